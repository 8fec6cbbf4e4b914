//! Turning a member name into safe path components.

/// The deepest path accepted (Linux cannot even open paths much deeper by name).
pub const MAX_DEPTH: usize = 2048;

/// A member name split into components that are safe to place under an extraction root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Components {
    /// Never empty, `.` or `..`, never containing `/` or NUL. Empty for the root itself
    /// (`./` or `/`).
    pub parts: Vec<Vec<u8>>,
    /// The name was absolute; its leading `/` was dropped (as GNU tar does).
    pub was_absolute: bool,
}

/// Split a member name into components: empty and `.` components are dropped and a leading
/// `/` is removed; a `..` component, a NUL byte or more than [`MAX_DEPTH`] levels are refused,
/// so nothing named in an archive can reach outside the directory it is placed in.
pub fn components(name: &[u8]) -> Result<Components, String> {
    if name.contains(&0) {
        return Err("the name contains a NUL byte".into());
    }
    let mut parts = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(
                "the name contains a '..' component, which would point outside the archive's root"
                    .into(),
            ),
            _ => {
                if parts.len() == MAX_DEPTH {
                    return Err(format!("the name is more than {MAX_DEPTH} levels deep"));
                }
                parts.push(c.to_vec());
            }
        }
    }
    Ok(Components {
        parts,
        was_absolute: name.starts_with(b"/"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(n: &[u8]) -> Vec<Vec<u8>> {
        components(n).unwrap().parts
    }

    #[test]
    fn normalizes_and_refuses() {
        assert_eq!(
            parts(b"./a//b/./c/"),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(parts(b"./").is_empty());
        let abs = components(b"/etc/passwd").unwrap();
        assert!(abs.was_absolute);
        assert_eq!(abs.parts, vec![b"etc".to_vec(), b"passwd".to_vec()]);
        assert!(components(b"a/../../etc").is_err());
        assert!(components(b"..").is_err());
        assert!(components(b"a\0b").is_err());
        assert_eq!(parts(b"..a/b.."), vec![b"..a".to_vec(), b"b..".to_vec()]);
        assert!(components(&b"a/".repeat(MAX_DEPTH + 1)).is_err());
    }

    proptest! {
        #[test]
        fn components_are_always_safe(name in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(c) = components(&name) {
                for p in c.parts {
                    prop_assert!(!p.is_empty() && p != b"." && p != b".." && !p.contains(&b'/') && !p.contains(&0));
                }
            }
        }
    }
}
