//! The bandwidth model every report uses: how long the bytes a run moved
//! would take on a serial link (the README's "link model"). A UART frame is
//! 8N1, 10 bits a byte.

/// Default link speed of the bandwidth model: 1 Mbit/s (a UART at 1 Mbaud).
pub const DEFAULT_LINK_BPS: f64 = 1e6;

/// Seconds `bytes` take on a serial link at `bps` (8N1: 10 bits a byte).
pub fn link_seconds(bytes: u64, bps: f64) -> f64 {
    bytes as f64 * 10.0 / bps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_bits_a_byte() {
        assert_eq!(link_seconds(100_000, DEFAULT_LINK_BPS), 1.0);
        assert_eq!(link_seconds(0, 9600.0), 0.0);
    }
}
