//! Shamir's secret sharing over GF(2⁸) with the AES polynomial, laid out as OpenBao does: one
//! random polynomial of degree `threshold - 1` per secret byte, x-coordinates drawn without
//! replacement from 1..=255, each share `y_1..y_n ‖ x` (secret length + 1 bytes).

use rand::seq::SliceRandom;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Multiply in GF(2⁸) modulo x⁸ + x⁴ + x³ + x + 1, without branches on the data.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut r: u8 = 0;
    for _ in 0..8 {
        r ^= a & (0u8.wrapping_sub(b & 1));
        let hi = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & hi);
        b >>= 1;
    }
    r
}

/// Multiplicative inverse (a²⁵⁴); `inv(0) = 0`, never used for 0 here.
fn inv(a: u8) -> u8 {
    let mut r = a;
    for _ in 0..6 {
        r = mul(r, r);
        r = mul(r, a);
    }
    mul(r, r)
}

/// Split `secret` into `parts` shares, any `threshold` of which recover it.
pub(crate) fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    if parts < threshold {
        return Err(Error::invalid_input("parts cannot be less than threshold"));
    }
    if parts > 255 {
        return Err(Error::invalid_input("parts cannot exceed 255"));
    }
    if threshold < 2 {
        return Err(Error::invalid_input("threshold must be at least 2"));
    }
    if threshold > 255 {
        return Err(Error::invalid_input("threshold cannot exceed 255"));
    }
    if secret.is_empty() {
        return Err(Error::invalid_input("cannot split an empty secret"));
    }
    let mut xs: Vec<u8> = (1..=255u8).collect();
    xs.shuffle(&mut rand::rng());
    xs.truncate(parts);
    let mut shares: Vec<Zeroizing<Vec<u8>>> = xs
        .iter()
        .map(|_| Zeroizing::new(Vec::with_capacity(secret.len() + 1)))
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; threshold]);
    for &byte in secret {
        aws_lc_rs::rand::fill(coeffs.as_mut_slice())
            .map_err(|_| Error::internal("random source failed"))?;
        if let Some(c0) = coeffs.first_mut() {
            *c0 = byte;
        }
        for (share, &x) in shares.iter_mut().zip(&xs) {
            // Horner's rule from the highest coefficient.
            let y = coeffs.iter().rev().fold(0u8, |acc, &c| mul(acc, x) ^ c);
            share.push(y);
        }
    }
    for (share, &x) in shares.iter_mut().zip(&xs) {
        share.push(x);
    }
    Ok(shares)
}

/// Recover the secret from at least `threshold` shares (Lagrange interpolation at 0).
pub(crate) fn combine(parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>> {
    if parts.len() < 2 {
        return Err(Error::invalid_input(
            "less than two parts cannot be used to reconstruct the secret",
        ));
    }
    let first_len = parts.first().map(|p| p.len()).unwrap_or(0);
    if first_len < 2 {
        return Err(Error::invalid_input("parts must be at least two bytes"));
    }
    if parts.iter().any(|p| p.len() != first_len) {
        return Err(Error::invalid_input("all parts must be the same length"));
    }
    let xs: Vec<u8> = parts.iter().filter_map(|p| p.last().copied()).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs.iter().skip(i + 1).any(|y| y == x) {
            return Err(Error::invalid_input("duplicate part detected"));
        }
    }
    let secret_len = first_len - 1;
    let mut secret = Zeroizing::new(vec![0u8; secret_len]);
    // Lagrange basis at 0: l_i = Π_{j≠i} x_j / (x_i ⊕ x_j).
    let basis: Vec<u8> = xs
        .iter()
        .enumerate()
        .map(|(i, &xi)| {
            xs.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold(1u8, |acc, (_, &xj)| mul(acc, mul(xj, inv(xi ^ xj))))
        })
        .collect();
    for (idx, out) in secret.iter_mut().enumerate() {
        *out = parts.iter().zip(&basis).fold(0u8, |acc, (p, &l)| {
            acc ^ mul(p.get(idx).copied().unwrap_or(0), l)
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn field_arithmetic() {
        assert_eq!(mul(0x57, 0x83), 0xc1); // FIPS-197 example
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "inverse of {a}");
        }
    }

    #[test]
    fn shares_have_openbao_layout() {
        let secret = [9u8; 32];
        let shares = split(&secret, 5, 3).unwrap();
        assert_eq!(shares.len(), 5);
        assert!(shares.iter().all(|s| s.len() == 33));
        let xs: std::collections::HashSet<u8> = shares.iter().map(|s| s[32]).collect();
        assert_eq!(xs.len(), 5);
        assert!(!xs.contains(&0));
    }

    #[test]
    fn combine_errors() {
        let s = split(b"secret", 3, 2).unwrap();
        assert!(
            combine(&[&s[0]])
                .unwrap_err()
                .message()
                .starts_with("less than two parts")
        );
        assert_eq!(
            combine(&[&[1], &[2]]).unwrap_err().message(),
            "parts must be at least two bytes"
        );
        assert_eq!(
            combine(&[&s[0], &s[1][..3]]).unwrap_err().message(),
            "all parts must be the same length"
        );
        assert_eq!(
            combine(&[&s[0], &s[0]]).unwrap_err().message(),
            "duplicate part detected"
        );
        assert!(split(b"x", 2, 3).is_err());
        assert!(split(b"x", 256, 3).is_err());
    }

    proptest! {
        #[test]
        fn any_threshold_subset_recovers(secret in proptest::collection::vec(any::<u8>(), 1..48),
                                         parts in 2usize..12, t_off in 0usize..10, seed in any::<u64>()) {
            let threshold = 2 + t_off % (parts - 1);
            let shares = split(&secret, parts, threshold).unwrap();
            let mut idx: Vec<usize> = (0..parts).collect();
            let rot = (seed as usize) % parts;
            idx.rotate_left(rot);
            let chosen: Vec<&[u8]> = idx[..threshold].iter().map(|&i| shares[i].as_slice()).collect();
            let got = combine(&chosen).unwrap();
            prop_assert_eq!(got.as_slice(), secret.as_slice());
            if threshold > 2 {
                let fewer: Vec<&[u8]> = idx[..threshold - 1].iter().map(|&i| shares[i].as_slice()).collect();
                // Fewer shares give a value, but (almost surely) not the secret.
                let got = combine(&fewer).unwrap();
                prop_assume!(secret.len() >= 8);
                prop_assert_ne!(got.as_slice(), secret.as_slice());
            }
        }
    }
}
