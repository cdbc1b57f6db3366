//! The parser: tokens to an untyped syntax tree, with nesting bounded by the depth limit.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::In => "in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }
}

#[derive(Debug)]
pub(super) enum AstKind {
    /// An integer literal before its sign is known (so `-9223372036854775808` works).
    RawInt(u64),
    Lit(Lit),
    List(Vec<Ast>),
    Ident(String),
    Select(Box<Ast>, String),
    Call {
        target: Option<Box<Ast>>,
        name: String,
        args: Vec<Ast>,
    },
    Not(Box<Ast>),
    Neg(Box<Ast>),
    Binary(BinOp, Box<Ast>, Box<Ast>),
    Cond(Box<Ast>, Box<Ast>, Box<Ast>),
}

/// A parsed sub-expression; `pos` is the byte offset errors about it point at (the operator of a binary
/// expression, the field name of a selection, the function name of a call, else its first character).
#[derive(Debug)]
pub(super) struct Ast {
    pub(super) kind: AstKind,
    pub(super) pos: usize,
    pub(super) depth: usize,
}

impl Ast {
    pub(super) fn new(kind: AstKind, pos: usize) -> Res<Ast> {
        let child = match &kind {
            AstKind::RawInt(_) | AstKind::Lit(_) | AstKind::Ident(_) => 0,
            AstKind::List(items) => items.iter().map(|a| a.depth).max().unwrap_or(0),
            AstKind::Select(a, _) | AstKind::Not(a) | AstKind::Neg(a) => a.depth,
            AstKind::Call { target, args, .. } => target
                .iter()
                .map(|t| t.depth)
                .chain(args.iter().map(|a| a.depth))
                .max()
                .unwrap_or(0),
            AstKind::Binary(_, a, b) => a.depth.max(b.depth),
            AstKind::Cond(a, b, c) => a.depth.max(b.depth).max(c.depth),
        };
        let depth = child + 1;
        if depth > MAX_DEPTH {
            return Err(too_deep(pos));
        }
        Ok(Ast { kind, pos, depth })
    }

    /// The dotted text of an identifier/selection chain (`a.b.c`), for messages.
    pub(super) fn path_text(&self) -> Option<String> {
        match &self.kind {
            AstKind::Ident(name) => Some(name.clone()),
            AstKind::Select(base, name) => base.path_text().map(|b| format!("{b}.{name}")),
            _ => None,
        }
    }
}

pub(super) fn too_deep(pos: usize) -> RawError {
    RawError::new(
        pos,
        format!("filter is nested deeper than {MAX_DEPTH} levels"),
    )
}

pub(super) struct Parser<'t> {
    pub(super) toks: &'t [Token],
    pub(super) i: usize,
    pub(super) depth: usize,
}

impl<'t> Parser<'t> {
    pub(super) fn new(toks: &'t [Token]) -> Self {
        Self {
            toks,
            i: 0,
            depth: 0,
        }
    }

    pub(super) fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.tok)
    }

    pub(super) fn pos(&self) -> usize {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map_or(0, |t| t.pos)
    }

    pub(super) fn bump(&mut self) -> Token {
        let t = self.toks.get(self.i).cloned().unwrap_or(Token {
            tok: Tok::Eof,
            pos: self.pos(),
        });
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    pub(super) fn expect(&mut self, tok: &Tok, context: &str) -> Res<usize> {
        if self.peek() == tok {
            Ok(self.bump().pos)
        } else {
            Err(RawError::new(
                self.pos(),
                format!("expected {tok} {context}, found {}", self.peek()),
            ))
        }
    }

    pub(super) fn parse(mut self) -> Res<Ast> {
        if *self.peek() == Tok::Eof {
            return Err(RawError::new(self.pos(), "filter is empty"));
        }
        let ast = self.expr()?;
        if *self.peek() != Tok::Eof {
            return Err(RawError::new(
                self.pos(),
                format!("unexpected {} after the end of the expression", self.peek()),
            ));
        }
        Ok(ast)
    }

    pub(super) fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(too_deep(self.pos()));
        }
        Ok(())
    }

    pub(super) fn expr(&mut self) -> Res<Ast> {
        self.enter()?;
        let cond = self.binary(0)?;
        let result = if *self.peek() == Tok::Question {
            let pos = self.bump().pos;
            let then = self.binary(0)?;
            self.expect(&Tok::Colon, "in `c ? a : b`")?;
            let other = self.expr()?;
            Ast::new(
                AstKind::Cond(Box::new(cond), Box::new(then), Box::new(other)),
                pos,
            )?
        } else {
            cond
        };
        self.depth -= 1;
        Ok(result)
    }

    /// Binary operators by precedence level: 0 `||`, 1 `&&`, 2 relations, 3 `+ -`, 4 `* / %`.
    pub(super) fn binary(&mut self, level: u8) -> Res<Ast> {
        if level > 4 {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let op = match (level, self.peek()) {
                (0, Tok::Or) => BinOp::Or,
                (1, Tok::And) => BinOp::And,
                (2, Tok::Lt) => BinOp::Lt,
                (2, Tok::Le) => BinOp::Le,
                (2, Tok::Gt) => BinOp::Gt,
                (2, Tok::Ge) => BinOp::Ge,
                (2, Tok::EqEq) => BinOp::Eq,
                (2, Tok::Ne) => BinOp::Ne,
                (2, Tok::In) => BinOp::In,
                (3, Tok::Plus) => BinOp::Add,
                (3, Tok::Minus) => BinOp::Sub,
                (4, Tok::Star) => BinOp::Mul,
                (4, Tok::Slash) => BinOp::Div,
                (4, Tok::Percent) => BinOp::Mod,
                _ => return Ok(left),
            };
            let pos = self.bump().pos;
            let right = self.binary(level + 1)?;
            left = Ast::new(AstKind::Binary(op, Box::new(left), Box::new(right)), pos)?;
        }
    }

    pub(super) fn unary(&mut self) -> Res<Ast> {
        let mut ops = Vec::new();
        while matches!(self.peek(), Tok::Not | Tok::Minus) {
            let t = self.bump();
            ops.push((t.tok == Tok::Not, t.pos));
            if ops.len() > MAX_DEPTH {
                return Err(too_deep(t.pos));
            }
        }
        let mut ast = self.member()?;
        for (not, pos) in ops.into_iter().rev() {
            ast = if not {
                Ast::new(AstKind::Not(Box::new(ast)), pos)?
            } else {
                match ast.kind {
                    AstKind::RawInt(n) if n <= 1u64 << 63 => {
                        let value = 0i64.wrapping_sub_unsigned(n);
                        Ast::new(AstKind::Lit(Lit::Int(value)), pos)?
                    }
                    AstKind::Lit(Lit::Double(d)) => Ast::new(AstKind::Lit(Lit::Double(-d)), pos)?,
                    kind => {
                        let inner = Ast {
                            kind,
                            pos: ast.pos,
                            depth: ast.depth,
                        };
                        Ast::new(AstKind::Neg(Box::new(inner)), pos)?
                    }
                }
            };
        }
        Ok(ast)
    }

    pub(super) fn member(&mut self) -> Res<Ast> {
        let mut ast = self.primary()?;
        loop {
            match self.peek() {
                Tok::Dot => {
                    self.bump();
                    let t = self.bump();
                    let Tok::Ident(name) = t.tok else {
                        return Err(RawError::new(
                            t.pos,
                            format!(
                                "expected a field or function name after `.`, found {}",
                                t.tok
                            ),
                        ));
                    };
                    if *self.peek() == Tok::LParen {
                        let args = self.args()?;
                        ast = Ast::new(
                            AstKind::Call {
                                target: Some(Box::new(ast)),
                                name,
                                args,
                            },
                            t.pos,
                        )?;
                    } else {
                        ast = Ast::new(AstKind::Select(Box::new(ast), name), t.pos)?;
                    }
                }
                Tok::LBracket => {
                    return Err(RawError::new(
                        self.pos(),
                        "indexing with `[…]` is not supported (use exists() or all())",
                    ))
                }
                _ => return Ok(ast),
            }
        }
    }

    /// `( [expr {, expr}] )`, the opening parenthesis being the current token.
    pub(super) fn args(&mut self) -> Res<Vec<Ast>> {
        self.expect(&Tok::LParen, "")?;
        let mut args = Vec::new();
        if *self.peek() == Tok::RParen {
            self.bump();
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(args);
                }
                other => {
                    return Err(RawError::new(
                        self.pos(),
                        format!("expected `,` or `)` in the argument list, found {other}"),
                    ))
                }
            }
        }
    }

    pub(super) fn primary(&mut self) -> Res<Ast> {
        let t = self.bump();
        let pos = t.pos;
        match t.tok {
            Tok::Int(n) => Ast::new(AstKind::RawInt(n), pos),
            Tok::Double(d) => Ast::new(AstKind::Lit(Lit::Double(d)), pos),
            Tok::Str(s) => Ast::new(AstKind::Lit(Lit::Str(s.into_boxed_str())), pos),
            Tok::True => Ast::new(AstKind::Lit(Lit::Bool(true)), pos),
            Tok::False => Ast::new(AstKind::Lit(Lit::Bool(false)), pos),
            Tok::Null => Ast::new(AstKind::Lit(Lit::Null), pos),
            Tok::Ident(name) => {
                if *self.peek() == Tok::LParen {
                    let args = self.args()?;
                    Ast::new(
                        AstKind::Call {
                            target: None,
                            name,
                            args,
                        },
                        pos,
                    )
                } else {
                    Ast::new(AstKind::Ident(name), pos)
                }
            }
            Tok::LParen => {
                let inner = self.expr()?;
                self.expect(&Tok::RParen, "to close `(`")?;
                Ok(inner)
            }
            Tok::LBracket => {
                let mut items = Vec::new();
                loop {
                    if *self.peek() == Tok::RBracket {
                        self.bump();
                        break;
                    }
                    items.push(self.expr()?);
                    match self.peek() {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RBracket => {
                            self.bump();
                            break;
                        }
                        other => {
                            return Err(RawError::new(
                                self.pos(),
                                format!("expected `,` or `]` in the list, found {other}"),
                            ))
                        }
                    }
                }
                Ast::new(AstKind::List(items), pos)
            }
            Tok::LBrace => Err(RawError::new(pos, "map literals are not supported")),
            Tok::Eof => Err(RawError::new(pos, "unexpected end of the filter")),
            other => Err(RawError::new(pos, format!("unexpected {other}"))),
        }
    }
}
