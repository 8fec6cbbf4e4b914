//! Chunk-size parameters and their validation.
//!
//! [`ChunkerParams`] holds the three sizes that drive FastCDC (minimum,
//! average/"normal", maximum chunk length) and [`ChunkerParams::validate`]
//! enforces the invariants the chunker relies on. [`ParamsError`] says which
//! invariant a rejected set of parameters broke. Nothing here touches data.

use std::fmt;

/// Sizes (in bytes) that drive content-defined chunking.
///
/// Every chunk except the last one of a stream has
/// `min_size <= len <= max_size`; the distribution of lengths in between is
/// shaped by `avg_size` (see the crate docs for the expected mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkerParams {
    /// Smallest length of a chunk that is not the final one.
    pub min_size: usize,
    /// Target ("normal") size; must be a power of two.
    pub avg_size: usize,
    /// Hard upper bound on a chunk's length.
    pub max_size: usize,
}

impl ChunkerParams {
    /// Smallest allowed `min_size`: the rolling hash needs a 64-byte window
    /// that lies entirely inside the chunk before the first candidate cut.
    pub const MIN_ALLOWED: usize = 64;

    /// Largest allowed `max_size` (64 MiB).
    pub const MAX_ALLOWED: usize = 64 * 1024 * 1024;

    /// SnapGuard's defaults: min 512 KiB, avg 1 MiB, max 8 MiB.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min_size: 512 * 1024,
        avg_size: 1024 * 1024,
        max_size: 8 * 1024 * 1024,
    };

    /// Checks `avg_size` is a power of two and
    /// `64 <= min_size < avg_size < max_size <= 64 MiB`.
    pub fn validate(&self) -> Result<(), ParamsError> {
        let ChunkerParams {
            min_size,
            avg_size,
            max_size,
        } = *self;
        if !avg_size.is_power_of_two() {
            return Err(ParamsError::AvgNotPowerOfTwo { avg_size });
        }
        if min_size < Self::MIN_ALLOWED {
            return Err(ParamsError::MinTooSmall { min_size });
        }
        if max_size > Self::MAX_ALLOWED {
            return Err(ParamsError::MaxTooLarge { max_size });
        }
        if !(min_size < avg_size && avg_size < max_size) {
            return Err(ParamsError::NotOrdered {
                min_size,
                avg_size,
                max_size,
            });
        }
        Ok(())
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a [`ChunkerParams`] was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    /// `avg_size` is not a power of two (this includes zero).
    AvgNotPowerOfTwo {
        /// The offending value.
        avg_size: usize,
    },
    /// `min_size` is below [`ChunkerParams::MIN_ALLOWED`].
    MinTooSmall {
        /// The offending value.
        min_size: usize,
    },
    /// `max_size` is above [`ChunkerParams::MAX_ALLOWED`].
    MaxTooLarge {
        /// The offending value.
        max_size: usize,
    },
    /// The sizes are not strictly increasing `min < avg < max`.
    NotOrdered {
        /// Given minimum.
        min_size: usize,
        /// Given average.
        avg_size: usize,
        /// Given maximum.
        max_size: usize,
    },
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParamsError::AvgNotPowerOfTwo { avg_size } => {
                write!(f, "chunker avg_size {avg_size} is not a power of two")
            }
            ParamsError::MinTooSmall { min_size } => write!(
                f,
                "chunker min_size {min_size} is below the allowed minimum {}",
                ChunkerParams::MIN_ALLOWED
            ),
            ParamsError::MaxTooLarge { max_size } => write!(
                f,
                "chunker max_size {max_size} is above the allowed maximum {}",
                ChunkerParams::MAX_ALLOWED
            ),
            ParamsError::NotOrdered {
                min_size,
                avg_size,
                max_size,
            } => write!(
                f,
                "chunker sizes must satisfy min < avg < max, got min {min_size}, \
                 avg {avg_size}, max {max_size}"
            ),
        }
    }
}

impl std::error::Error for ParamsError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(min_size: usize, avg_size: usize, max_size: usize) -> ChunkerParams {
        ChunkerParams {
            min_size,
            avg_size,
            max_size,
        }
    }

    #[test]
    fn default_is_valid_and_matches_spec() {
        assert_eq!(ChunkerParams::DEFAULT.validate(), Ok(()));
        assert_eq!(ChunkerParams::default(), ChunkerParams::DEFAULT);
        assert_eq!(ChunkerParams::DEFAULT.min_size, 512 << 10);
        assert_eq!(ChunkerParams::DEFAULT.avg_size, 1 << 20);
        assert_eq!(ChunkerParams::DEFAULT.max_size, 8 << 20);
    }

    #[test]
    fn validation_table() {
        let mib = 1024 * 1024;
        let cases = [
            (p(64, 128, 129), Ok(())),
            (p(64, 256, 1024), Ok(())),
            (p(mib, 32 * mib, 64 * mib), Ok(())),
            (
                p(64, 0, 1024),
                Err(ParamsError::AvgNotPowerOfTwo { avg_size: 0 }),
            ),
            (
                p(64, 300, 1024),
                Err(ParamsError::AvgNotPowerOfTwo { avg_size: 300 }),
            ),
            (
                p(63, 256, 1024),
                Err(ParamsError::MinTooSmall { min_size: 63 }),
            ),
            (
                p(64, 256, 64 * mib + 1),
                Err(ParamsError::MaxTooLarge {
                    max_size: 64 * mib + 1,
                }),
            ),
            (
                p(256, 256, 1024),
                Err(ParamsError::NotOrdered {
                    min_size: 256,
                    avg_size: 256,
                    max_size: 1024,
                }),
            ),
            (
                p(64, 1024, 1024),
                Err(ParamsError::NotOrdered {
                    min_size: 64,
                    avg_size: 1024,
                    max_size: 1024,
                }),
            ),
            (
                p(64, 64 * mib, 64 * mib),
                Err(ParamsError::NotOrdered {
                    min_size: 64,
                    avg_size: 64 * mib,
                    max_size: 64 * mib,
                }),
            ),
        ];
        for (params, want) in cases {
            assert_eq!(params.validate(), want, "{params:?}");
        }
    }

    #[test]
    fn errors_display_and_are_std_errors() {
        let err: Box<dyn std::error::Error> =
            Box::new(ParamsError::AvgNotPowerOfTwo { avg_size: 300 });
        assert_eq!(
            err.to_string(),
            "chunker avg_size 300 is not a power of two"
        );
        let err = ParamsError::NotOrdered {
            min_size: 3,
            avg_size: 2,
            max_size: 1,
        };
        assert!(err.to_string().contains("min 3, avg 2, max 1"));
        assert!(ParamsError::MinTooSmall { min_size: 1 }
            .to_string()
            .contains("64"));
        assert!(ParamsError::MaxTooLarge { max_size: 1 }
            .to_string()
            .contains("67108864"));
    }
}
