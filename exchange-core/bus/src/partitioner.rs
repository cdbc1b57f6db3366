//! Kafka's default partitioner for keyed records (murmur2), so that a key lands in the same partition on the
//! embedded bus, on the Kafka bus (rdkafka is configured with `partitioner=murmur2_random`) and in Java clients.

/// The partition for `key` among `partitions` partitions: `(murmur2(key) & 0x7fffffff) % partitions`,
/// exactly as Kafka's Java client computes it.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Murmur2 (32-bit) with Kafka's seed `0x9747b28c`.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from Kafka's own `UtilsTest.testMurmur2` (signed ints there).
    #[test]
    fn murmur2_matches_kafka_reference_values() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input.as_bytes()) as i32,
                expected,
                "murmur2({input})"
            );
        }
    }

    #[test]
    fn same_key_same_partition_and_in_range() {
        for p in 1..20 {
            let a = partition_for_key(b"610921100201", p);
            assert!(a < p);
            assert_eq!(a, partition_for_key(b"610921100201", p));
        }
    }
}
