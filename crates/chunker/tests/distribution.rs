//! Statistical checks of chunk lengths on pseudo-random data against the
//! mean that normalized chunking predicts for the parameters.

use snapguard_chunker::{Chunker, ChunkerParams};

#[path = "support/data.rs"]
mod data;

const MIB: usize = 1024 * 1024;

/// Expected mean chunk length if every candidate length is an independent
/// trial: `min + Σ_{L=min}^{max-1} P(len > L)`, with per-candidate success
/// probability 2^-(log2(avg)+2) up to avg and 2^-(log2(avg)-2) after it.
fn expected_mean(p: &ChunkerParams) -> f64 {
    let bits = p.avg_size.trailing_zeros() as i32;
    let (p_s, p_l) = (0.5f64.powi(bits + 2), 0.5f64.powi(bits - 2));
    let mut survive = 1.0;
    let mut mean = p.min_size as f64;
    for len in p.min_size..p.max_size {
        survive *= 1.0 - if len <= p.avg_size { p_s } else { p_l };
        mean += survive;
    }
    mean
}

struct Stats {
    mean: f64,
    count: usize,
    at_most_avg: f64,
    at_max: f64,
}

fn stats(params: ChunkerParams, len: usize) -> Stats {
    let c = Chunker::new(data::gear(0xc0ffee), params).expect("valid params");
    let input = data::random_bytes(42, len);
    let lens = c.chunk_lengths(&input);
    assert_eq!(lens.iter().sum::<usize>(), len);
    let full = &lens[..lens.len() - 1];
    let frac = |pred: &dyn Fn(usize) -> bool| {
        full.iter().filter(|&&l| pred(l)).count() as f64 / full.len() as f64
    };
    let s = Stats {
        mean: full.iter().sum::<usize>() as f64 / full.len() as f64,
        count: lens.len(),
        at_most_avg: frac(&|l| l <= params.avg_size),
        at_max: frac(&|l| l == params.max_size),
    };
    eprintln!(
        "{params:?}: {} chunks, mean {:.0} (expected {:.0}), {:.3} <= avg, {:.4} at max",
        s.count,
        s.mean,
        expected_mean(&params),
        s.at_most_avg,
        s.at_max
    );
    s
}

#[test]
fn expected_mean_formula_values() {
    let default = expected_mean(&ChunkerParams::DEFAULT) / MIB as f64;
    assert!((1.18..1.20).contains(&default), "{default}");
    let small = ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
    };
    assert!((290.0..294.0).contains(&expected_mean(&small)));
}

/// Default parameters on 64 MiB: only ~54 chunks, so the sample mean has a
/// standard error of roughly 5 %; the brief's 25 % window is generous.
#[test]
fn default_params_mean_on_64_mib() {
    let params = ChunkerParams::DEFAULT;
    let s = stats(params, 64 * MIB);
    let want = expected_mean(&params);
    assert!(
        (s.mean - want).abs() <= 0.25 * want,
        "mean {} vs {want}",
        s.mean
    );
    assert!(s.count > 30);
}

/// Small parameters on 64 MiB give ~230k chunks, so the mean and the shape
/// of the distribution can be checked tightly.
#[test]
fn small_params_distribution_on_64_mib() {
    let params = ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
    };
    let s = stats(params, 64 * MIB);
    let want = expected_mean(&params);
    assert!(
        (s.mean - want).abs() <= 0.03 * want,
        "mean {} vs {want}",
        s.mean
    );
    // P(cut at <= avg) = 1 - (1 - 2^-10)^193 ~= 0.172.
    assert!((0.16..0.185).contains(&s.at_most_avg), "{}", s.at_most_avg);
    // P(no cut by max) = (1 - 2^-10)^193 * (1 - 2^-6)^767 ~= 4e-6.
    assert!(s.at_max < 0.001, "{}", s.at_max);
}
