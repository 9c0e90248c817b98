//! CRC32C (Castagnoli), hardware-accelerated through the `crc32c` crate (SSE4.2
//! with three-way interleaving and table-free combination; a software fallback
//! elsewhere). Seeds chain: crc(a ++ b) == crc_seeded(crc(a), b).

/// CRC32C of `data`, continuing from `seed` (0 to start).
#[inline]
pub fn crc32c(seed: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(seed, data)
}

/// CRC32C over a list of buffers, as if they were one (iSCSI/NVMe-TCP data digests over iovecs).
pub fn crc32c_list<'a, I: IntoIterator<Item = &'a [u8]>>(seed: u32, bufs: I) -> u32 {
    bufs.into_iter().fold(seed, crc32c)
}

/// Whether the hardware path is in use.
pub fn hardware_accelerated() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("sse4.2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3720 appendix B.4 test vectors.
    #[test]
    fn rfc3720_vectors() {
        assert_eq!(crc32c(0, &[0u8; 32]), 0x8a9136aa);
        assert_eq!(crc32c(0, &[0xffu8; 32]), 0x62a8ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(0, &inc), 0x46dd794e);
        let dec: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(crc32c(0, &dec), 0x113fdb5c);
        let scsi_read: [u8; 48] = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(crc32c(0, &scsi_read), 0xd9963a56);
    }

    #[test]
    fn chaining_equals_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = crc32c(0, &data);
        for cut in [0, 1, 7, 64, 4095, 9999, 10_000] {
            let (a, b) = data.split_at(cut);
            assert_eq!(crc32c(crc32c(0, a), b), whole);
            assert_eq!(crc32c_list(0, [a, b]), whole);
        }
    }
}
