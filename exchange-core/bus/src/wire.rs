//! The Confluent wire format of a record value on the bus.
//!
//! Every Avro value on `std.*` and `sub.*` topics is framed the way Confluent's serializers frame it, so that
//! standard Kafka tooling can decode it with the schema registry unsilo serves:
//!
//! ```text
//! byte 0      magic byte, always 0
//! bytes 1..5  schema id, 4 bytes, big-endian (the registry's global id)
//! bytes 5..   the datum in Avro binary encoding
//! ```

/// The magic byte that opens every framed value.
pub const MAGIC_BYTE: u8 = 0;

/// Length of the frame header: the magic byte and the 4-byte schema id.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a valid framed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the 5-byte header.
    #[error("framed value too short: {len} bytes, the header alone is 5 (magic byte 0 and a 4-byte schema id)")]
    TooShort {
        /// The number of bytes received.
        len: usize,
    },
    /// The first byte is not the magic byte 0 (the value was not written by a Confluent-format serializer).
    #[error("bad magic byte {found}: a framed value starts with byte 0")]
    BadMagicByte {
        /// The byte found instead.
        found: u8,
    },
}

/// Frames an Avro datum with its schema id: a new buffer holding the header and `avro_body`.
pub fn encode(schema_id: u32, avro_body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + avro_body.len());
    encode_into(&mut out, schema_id, avro_body);
    out
}

/// Appends the framed datum to `out` (for hot paths that reuse one buffer).
pub fn encode_into(out: &mut Vec<u8>, schema_id: u32, avro_body: &[u8]) {
    write_header(out, schema_id);
    out.extend_from_slice(avro_body);
}

/// Appends only the 5-byte header to `out`, for writers that then encode the Avro datum straight into `out`.
pub fn write_header(out: &mut Vec<u8>, schema_id: u32) {
    out.reserve(HEADER_LEN);
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a framed value into its schema id and its Avro body (borrowed from `bytes`).
pub fn decode(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    let (header, body) = match bytes.split_first_chunk::<HEADER_LEN>() {
        Some(split) => split,
        None => return Err(WireError::TooShort { len: bytes.len() }),
    };
    let [magic, id @ ..] = *header;
    if magic != MAGIC_BYTE {
        return Err(WireError::BadMagicByte { found: magic });
    }
    Ok((u32::from_be_bytes(id), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_writes_magic_byte_big_endian_id_then_body() {
        let framed = encode(0x0102_0304, b"avro");
        assert_eq!(framed, [0, 1, 2, 3, 4, b'a', b'v', b'r', b'o']);
    }

    #[test]
    fn decode_inverts_encode() {
        for id in [0, 1, 255, 256, 65_536, i32::MAX as u32, u32::MAX] {
            let framed = encode(id, &[9, 8, 7]);
            assert_eq!(decode(&framed), Ok((id, &[9u8, 8, 7][..])));
        }
    }

    #[test]
    fn an_empty_body_is_valid() {
        // An Avro record with no fields (or a null) encodes to zero bytes.
        let framed = encode(42, &[]);
        assert_eq!(framed.len(), HEADER_LEN);
        assert_eq!(decode(&framed), Ok((42, &[][..])));
    }

    #[test]
    fn encode_into_appends_to_what_is_there() {
        let mut buf = b"xy".to_vec();
        encode_into(&mut buf, 7, &[1]);
        assert_eq!(buf, [b'x', b'y', 0, 0, 0, 0, 7, 1]);
        let mut header_only = Vec::new();
        write_header(&mut header_only, 7);
        assert_eq!(header_only, [0, 0, 0, 0, 7]);
    }

    #[test]
    fn short_input_is_rejected_with_its_length() {
        for len in 0..HEADER_LEN {
            let bytes = vec![0u8; len];
            let err = decode(&bytes).unwrap_err();
            assert_eq!(err, WireError::TooShort { len });
            assert!(err.to_string().contains(&format!("{len} bytes")), "{err}");
        }
    }

    #[test]
    fn a_wrong_magic_byte_is_named() {
        let err = decode(&[1, 0, 0, 0, 1, 5]).unwrap_err();
        assert_eq!(err, WireError::BadMagicByte { found: 1 });
        assert!(err.to_string().contains("bad magic byte 1"), "{err}");
        // A plain JSON value, as a misconfigured producer would send.
        let err = decode(br#"{"a":1}"#).unwrap_err();
        assert_eq!(err, WireError::BadMagicByte { found: b'{' });
    }
}
