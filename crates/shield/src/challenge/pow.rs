//! The proof of work: the challenge is a signed [`Kind::Work`] token carrying a random nonce
//! and the difficulty; the client finds a counter such that SHA-256(challenge ‖ counter, the
//! counter in decimal ASCII) starts with `difficulty` zero bits. The server keeps nothing but
//! the nonces already redeemed.

use sha2::{Digest, Sha256};

use super::replay::{Nonce, ReplayCache};
use super::token::{Binding, Keyring, Kind, buffer};

/// The hardest difficulty accepted (bits): beyond it no browser finishes in reasonable time.
pub const MAX_DIFFICULTY: u8 = 32;

/// Leading zero bits of `hash`.
pub fn leading_zero_bits(hash: &[u8]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// SHA-256(challenge ‖ decimal counter).
pub fn work_hash(challenge: &[u8], counter: u64) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(challenge);
    hasher.update(counter.to_string().as_bytes());
    hasher.finalize().into()
}

/// Solve `challenge` (for tests and benchmarks; browsers run the page's script).
pub fn solve(challenge: &str, difficulty: u8) -> u64 {
    (0..u64::MAX)
        .find(|&counter| {
            leading_zero_bits(&work_hash(challenge.as_bytes(), counter)) >= u32::from(difficulty)
        })
        .unwrap_or(u64::MAX)
}

/// The difficulty for `pressure` (0..=3) between `min` and `max`, linearly.
pub fn difficulty_for(pressure: u8, min: u8, max: u8) -> u8 {
    let (min, max) = (min.min(MAX_DIFFICULTY), max.min(MAX_DIFFICULTY).max(min.min(MAX_DIFFICULTY)));
    let pressure = u32::from(pressure.min(3));
    min + ((u32::from(max - min) * pressure) / 3) as u8
}

/// A new challenge for `binding`, valid `ttl` seconds from `now`.
pub fn issue(keys: &Keyring, binding: &Binding, now: u64, ttl: u64, difficulty: u8, nonce: Nonce) -> String {
    let mut extra = [0u8; 17];
    extra[..16].copy_from_slice(&nonce);
    extra[16] = difficulty.min(MAX_DIFFICULTY);
    keys.sign(Kind::Work, binding, now, now.saturating_add(ttl), &extra)
}

/// Why a proof is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The challenge is not ours, not this client's, or has expired.
    #[error("challenge invalid or expired")]
    Challenge,
    /// The hash lacks the zero bits.
    #[error("not enough zero bits")]
    Work,
    /// The challenge was already redeemed.
    #[error("challenge already used")]
    Replayed,
}

/// Check a proof: signature, binding and age of the challenge first (cheap), then the work,
/// then that the nonce was not redeemed before (recording it).
pub fn verify(
    keys: &Keyring,
    binding: &Binding,
    challenge: &str,
    counter: u64,
    now: u64,
    replays: &std::sync::Mutex<ReplayCache>,
) -> Result<(), ProofError> {
    let mut buf = buffer();
    let token =
        keys.verify(challenge.as_bytes(), Kind::Work, binding, now, &mut buf).ok_or(ProofError::Challenge)?;
    let (Some(nonce), Some(&difficulty)) = (token.extra.get(..16), token.extra.get(16)) else {
        return Err(ProofError::Challenge);
    };
    let mut key: Nonce = [0; 16];
    key.copy_from_slice(nonce);
    let expiry = token.expiry;
    if leading_zero_bits(&work_hash(challenge.as_bytes(), counter)) < u32::from(difficulty) {
        return Err(ProofError::Work);
    }
    let fresh = replays.lock().unwrap_or_else(|p| p.into_inner()).redeem(key, expiry, now);
    if fresh { Ok(()) } else { Err(ProofError::Replayed) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::token::BindingRule;
    use proptest::prelude::*;
    use std::sync::Mutex;

    fn setup() -> (Keyring, Binding, Mutex<ReplayCache>) {
        let keys = Keyring::new(&[[3u8; 32]]).unwrap();
        let binding = BindingRule::default().bind("192.0.2.9".parse().unwrap(), b"UA");
        (keys, binding, Mutex::new(ReplayCache::new(100)))
    }

    #[test]
    fn zero_bits() {
        assert_eq!(leading_zero_bits(&[0, 0, 0x10]), 19);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
        assert_eq!(difficulty_for(0, 12, 18), 12);
        assert_eq!(difficulty_for(3, 12, 18), 18);
        assert_eq!(difficulty_for(9, 12, 18), 18);
        assert_eq!(difficulty_for(2, 18, 12), 18);
        assert_eq!(difficulty_for(3, 40, 60), MAX_DIFFICULTY);
    }

    #[test]
    fn a_solved_challenge_passes_once() {
        let (keys, binding, replays) = setup();
        let challenge = issue(&keys, &binding, 1000, 300, 10, [5; 16]);
        let counter = solve(&challenge, 10);
        assert_eq!(verify(&keys, &binding, &challenge, counter, 1001, &replays), Ok(()));
        assert_eq!(verify(&keys, &binding, &challenge, counter, 1002, &replays), Err(ProofError::Replayed));
        // Expired, other client, not solved.
        let challenge = issue(&keys, &binding, 1000, 300, 10, [6; 16]);
        let counter = solve(&challenge, 10);
        assert_eq!(verify(&keys, &binding, &challenge, counter, 1300, &replays), Err(ProofError::Challenge));
        let other = BindingRule::default().bind("192.0.3.9".parse().unwrap(), b"UA");
        assert_eq!(verify(&keys, &other, &challenge, counter, 1001, &replays), Err(ProofError::Challenge));
        let bad = (0..).find(|&c| leading_zero_bits(&work_hash(challenge.as_bytes(), c)) < 10).unwrap();
        assert_eq!(verify(&keys, &binding, &challenge, bad, 1001, &replays), Err(ProofError::Work));
        // A clearance token is no challenge.
        let clearance = keys.sign(Kind::Clearance, &binding, 1000, 2000, &[0; 17]);
        assert_eq!(verify(&keys, &binding, &clearance, 0, 1001, &replays), Err(ProofError::Challenge));
    }

    proptest! {
        #[test]
        fn random_proofs_never_pass(text in ".{0,120}", counter in any::<u64>()) {
            let (keys, binding, replays) = setup();
            prop_assert!(verify(&keys, &binding, &text, counter, 1001, &replays).is_err());
        }
    }
}
