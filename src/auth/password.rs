//! Passwords of downstream (`/billmgr`) accounts: stored only as argon2id hashes in
//! the PHC string format (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), produced by
//! `license-facade hash-password`. Verifying one is deliberately slow (tens of
//! milliseconds of CPU), so callers run it off the async runtime.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2};

/// Hashes `password` with argon2id and the crate's default cost (19 MiB, 2 passes,
/// one lane: the OWASP baseline) under a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes are a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashes any password with the default parameters")
        .to_string()
}

/// Checks that `phc` is an argon2id hash this process can verify against.
pub fn check_hash(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|e| format!("not a PHC password hash: {e}"))?;
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!(
            "the hash is {}, not argon2id; make one with `license-facade hash-password`",
            hash.algorithm
        ));
    }
    if hash.hash.is_none() {
        return Err("the PHC string carries no hash".into());
    }
    Ok(())
}

/// Whether `password` matches `phc` (argon2id; the cost comes from the string).
/// Slow by design: call it from a blocking thread.
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("s3cret pass");

        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(check_hash(&phc).is_ok());
        assert!(verify_password(&phc, "s3cret pass"));
        assert!(!verify_password(&phc, "s3cret pas"));
        assert_ne!(phc, hash_password("s3cret pass"), "a fresh salt each time");
    }

    #[test]
    fn other_algorithms_and_garbage_are_refused() {
        assert!(check_hash("plain").is_err());
        assert!(
            check_hash("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA").is_err()
        );
        assert!(!verify_password("plain", "plain"));
    }
}
