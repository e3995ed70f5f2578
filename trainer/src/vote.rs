//! The mechanism of partial TMR, with no policy: the three tile rotations a
//! layer runs under and the bitwise majority of the three results. Which
//! layers get protected, and with which (calibrated) rotations, is
//! [`crate::tmr`]'s business; [`crate::DeviceMatmul`] only applies it.

/// Bitwise majority of three int32 vectors.
pub fn vote(x: &[i32], y: &[i32], z: &[i32]) -> Vec<i32> {
    assert!(x.len() == y.len() && y.len() == z.len(), "TMR vote: lengths differ");
    x.iter().zip(y).zip(z).map(|((&a, &b), &c)| (a & b) | (b & c) | (a & c)).collect()
}

/// The three tile rotations for an R×C array: (0, 0), (⌊R/3⌋, ⌊C/3⌋),
/// (⌊2R/3⌋, ⌊2C/3⌋) (each at least 1 step, modulo the array size).
pub fn rotations(rows: usize, cols: usize) -> [(u8, u8); 3] {
    let r = |x: usize| (x.min(255)) as u8;
    let step_r = (rows / 3).max(1) % rows.max(1);
    let step_c = (cols / 3).max(1) % cols.max(1);
    [(0, 0), (r(step_r), r(step_c)), (r((2 * step_r) % rows.max(1)), r((2 * step_c) % cols.max(1)))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_is_bitwise() {
        let x = [0b1100, -1, 7, i32::MIN];
        let y = [0b1010, -1, 7, 0];
        let z = [0b0110, 0, 9, i32::MIN];
        assert_eq!(vote(&x, &y, &z), vec![0b1110, -1, 7, i32::MIN]);
        // Any single corrupted copy is voted out, whatever the corruption.
        for bad in [0x4000_0000, -5, 12345] {
            assert_eq!(vote(&[bad], &[42], &[42]), vec![42]);
            assert_eq!(vote(&[42], &[bad], &[42]), vec![42]);
            assert_eq!(vote(&[42], &[42], &[bad]), vec![42]);
        }
    }

    #[test]
    fn rotations_are_distinct() {
        assert_eq!(rotations(16, 16), [(0, 0), (5, 5), (10, 10)]);
        assert_eq!(rotations(4, 4), [(0, 0), (1, 1), (2, 2)]);
        let r = rotations(8, 8);
        assert!(r[0] != r[1] && r[1] != r[2] && r[0] != r[2]);
    }
}
