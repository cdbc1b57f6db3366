//! The lexer of filter text: tokens with their byte positions.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Int(u64),
    Double(f64),
    Str(String),
    Ident(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Question,
    Colon,
    Not,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    And,
    Or,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Tok::Int(n) => return write!(f, "`{n}`"),
            Tok::Double(d) => return write!(f, "`{d}`"),
            Tok::Str(_) => "a string",
            Tok::Ident(name) => return write!(f, "`{name}`"),
            Tok::True => "`true`",
            Tok::False => "`false`",
            Tok::Null => "`null`",
            Tok::In => "`in`",
            Tok::LParen => "`(`",
            Tok::RParen => "`)`",
            Tok::LBracket => "`[`",
            Tok::RBracket => "`]`",
            Tok::LBrace => "`{`",
            Tok::RBrace => "`}`",
            Tok::Dot => "`.`",
            Tok::Comma => "`,`",
            Tok::Question => "`?`",
            Tok::Colon => "`:`",
            Tok::Not => "`!`",
            Tok::Minus => "`-`",
            Tok::Plus => "`+`",
            Tok::Star => "`*`",
            Tok::Slash => "`/`",
            Tok::Percent => "`%`",
            Tok::Lt => "`<`",
            Tok::Le => "`<=`",
            Tok::Gt => "`>`",
            Tok::Ge => "`>=`",
            Tok::EqEq => "`==`",
            Tok::Ne => "`!=`",
            Tok::And => "`&&`",
            Tok::Or => "`||`",
            Tok::Eof => "the end of the filter",
        };
        f.write_str(s)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) pos: usize,
}

pub(super) fn lex(src: &str) -> Res<Vec<Token>> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let next = bytes.get(i + 1).copied();
        let simple = |tok: Tok, len: usize| (tok, len);
        let (tok, len) = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                i += 1;
                continue;
            }
            b'/' if next == Some(b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' => simple(Tok::LParen, 1),
            b')' => simple(Tok::RParen, 1),
            b'[' => simple(Tok::LBracket, 1),
            b']' => simple(Tok::RBracket, 1),
            b'{' => simple(Tok::LBrace, 1),
            b'}' => simple(Tok::RBrace, 1),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                return Err(RawError::new(
                    start,
                    "a number needs a digit before the decimal point (write `0.5`)",
                ))
            }
            b'.' => simple(Tok::Dot, 1),
            b',' => simple(Tok::Comma, 1),
            b'?' => simple(Tok::Question, 1),
            b':' => simple(Tok::Colon, 1),
            b'+' => simple(Tok::Plus, 1),
            b'-' => simple(Tok::Minus, 1),
            b'*' => simple(Tok::Star, 1),
            b'/' => simple(Tok::Slash, 1),
            b'%' => simple(Tok::Percent, 1),
            b'!' if next == Some(b'=') => simple(Tok::Ne, 2),
            b'!' => simple(Tok::Not, 1),
            b'<' if next == Some(b'=') => simple(Tok::Le, 2),
            b'<' => simple(Tok::Lt, 1),
            b'>' if next == Some(b'=') => simple(Tok::Ge, 2),
            b'>' => simple(Tok::Gt, 1),
            b'=' if next == Some(b'=') => simple(Tok::EqEq, 2),
            b'=' => return Err(RawError::new(start, "unexpected `=` (use `==` to compare)")),
            b'&' if next == Some(b'&') => simple(Tok::And, 2),
            b'&' => return Err(RawError::new(start, "unexpected `&` (use `&&`)")),
            b'|' if next == Some(b'|') => simple(Tok::Or, 2),
            b'|' => return Err(RawError::new(start, "unexpected `|` (use `||`)")),
            b'"' | b'\'' => {
                let (s, len) = lex_string(src, start)?;
                (Tok::Str(s), len)
            }
            b'0'..=b'9' => lex_number(src, start)?,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let mut end = start;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                let word = &src[start..end];
                let tok = match word {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "null" => Tok::Null,
                    "in" => Tok::In,
                    _ => Tok::Ident(word.to_string()),
                };
                (tok, end - start)
            }
            _ => {
                let ch = src
                    .get(start..)
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                return Err(RawError::new(start, format!("unexpected character `{ch}`")));
            }
        };
        tokens.push(Token { tok, pos: start });
        i = start + len;
    }
    tokens.push(Token {
        tok: Tok::Eof,
        pos: src.len(),
    });
    Ok(tokens)
}

pub(super) fn lex_number(src: &str, start: usize) -> Res<(Tok, usize)> {
    let bytes = src.as_bytes();
    let digits_end = |mut i: usize, hex: bool| {
        while i < bytes.len()
            && (bytes[i].is_ascii_digit() || (hex && bytes[i].is_ascii_hexdigit()))
        {
            i += 1;
        }
        i
    };
    let mut end;
    let mut is_double = false;
    if bytes.get(start) == Some(&b'0') && matches!(bytes.get(start + 1), Some(b'x' | b'X')) {
        end = digits_end(start + 2, true);
        let digits = &src[start + 2..end];
        if digits.is_empty() {
            return Err(RawError::new(start, "hex literal `0x` needs digits"));
        }
        let n = u64::from_str_radix(digits, 16)
            .map_err(|_| RawError::new(start, "integer literal is out of range"))?;
        check_number_end(src, end)?;
        return Ok((Tok::Int(n), end - start));
    }
    end = digits_end(start, false);
    if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(|b| b.is_ascii_digit()) {
        is_double = true;
        end = digits_end(end + 1, false);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if bytes.get(j).is_some_and(|b| b.is_ascii_digit()) {
            is_double = true;
            end = digits_end(j, false);
        } else {
            return Err(RawError::new(end, "exponent needs digits"));
        }
    }
    check_number_end(src, end)?;
    let text = &src[start..end];
    if is_double {
        let d: f64 = text
            .parse()
            .map_err(|_| RawError::new(start, "invalid double literal"))?;
        if !d.is_finite() {
            return Err(RawError::new(start, "double literal is out of range"));
        }
        Ok((Tok::Double(d), end - start))
    } else {
        let n: u64 = text
            .parse()
            .map_err(|_| RawError::new(start, "integer literal is out of range"))?;
        Ok((Tok::Int(n), end - start))
    }
}

pub(super) fn check_number_end(src: &str, end: usize) -> Res<()> {
    match src.as_bytes().get(end) {
        Some(b'u' | b'U') => Err(RawError::new(
            end,
            "unsigned integer literals are not supported",
        )),
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => {
            Err(RawError::new(end, "invalid character in number literal"))
        }
        _ => Ok(()),
    }
}

/// Lexes a quoted string starting at `start`; returns the value and the length in bytes.
pub(super) fn lex_string(src: &str, start: usize) -> Res<(String, usize)> {
    let rest = src.get(start..).unwrap_or("");
    let mut chars = rest.char_indices();
    let quote = match chars.next() {
        Some((_, q)) => q,
        None => return Err(RawError::new(start, "unterminated string")),
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, i + c.len_utf8())),
            '\n' => {
                return Err(RawError::new(
                    start,
                    "unterminated string (strings cannot span lines)",
                ))
            }
            '\\' => {
                let Some((j, e)) = chars.next() else {
                    break;
                };
                match e {
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                        let code = (hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .ok_or_else(|| {
                                RawError::new(start + i, "`\\u` needs exactly 4 hex digits")
                            })?;
                        let ch = char::from_u32(code).ok_or_else(|| {
                            RawError::new(
                                start + i,
                                format!("`\\u{hex}` is not a valid character (surrogate)"),
                            )
                        })?;
                        out.push(ch);
                    }
                    other => {
                        return Err(RawError::new(
                            start + j - 1,
                            format!(
                                "unknown escape `\\{other}` (supported: \\\\ \\\" \\' \\n \\r \\t \\uXXXX)"
                            ),
                        ))
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(RawError::new(start, "unterminated string"))
}
