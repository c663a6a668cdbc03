//! Interleaved rounds: every contestant of a group measured within milliseconds of the
//! others, so that their ratios are not taken across the machine's speed modes. Shared by
//! `benches/map_put.rs` and `benches/queue_push.rs` (a module of each, not a bench target).

use std::time::Duration;

use criterion::{Criterion, SamplingMode};

/// A contestant of an interleaved group: its name, the writes in one of its chunks, and the
/// chunk (draining after it, untimed).
pub struct Contestant<'a> {
    name: &'static str,
    items: u64,
    chunk: Box<dyn FnMut() -> Duration + 'a>,
}

impl<'a> Contestant<'a> {
    /// A contestant whose `chunk` makes `items` writes and returns their time.
    pub fn new(name: &'static str, items: u64, chunk: impl FnMut() -> Duration + 'a) -> Self {
        Contestant {
            name,
            items,
            chunk: Box::new(chunk),
        }
    }
}

/// Chunks per contestant per round in [`interleaved`]: the first runs on caches that the
/// other contestants filled since ("cold"); the rest on the contestant's own ("warm").
const VISIT: usize = 4;

/// Runs the contestants in interleaved rounds: each round runs [`VISIT`] chunks of every
/// contestant, one contestant after another, starting from a different one each round.
/// Criterion times the rounds; the chunks' times are kept and summarized per contestant, in
/// ns per write (named `unit` in the report): its median warm chunk (the visit's later
/// chunks) and cold chunk (the visit's first), and the median over rounds of the ratio of
/// its time per write to the first contestant's (tidefall's) in the same round, warm and
/// cold.
///
/// Why: this guest runs in speed modes that switch every few seconds (PERFORMANCE.md, "Noise
/// on the AMD guest"), and criterion runs contestants one after another, so two of them can
/// be measured in different modes. A round takes milliseconds: both sides of each ratio see
/// the same mode of the clock. Modes that follow a structure's instance (its allocation)
/// rather than the clock remain, so a ratio still varies from one run of the bench to the
/// next (PERFORMANCE.md, run N). The cold chunk adds what a write costs when other work ran
/// in between (the structure's lines are refetched from the shared cache): one with more
/// lines per item pays more there.
pub fn interleaved(
    c: &mut Criterion,
    group_name: &str,
    unit: &str,
    mut contestants: Vec<Contestant<'_>>,
) {
    let mut group = c.benchmark_group(group_name);
    group
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    let n = contestants.len();
    // Per round: (cold, median warm) time per write of each contestant, in seconds.
    let mut rounds: Vec<Vec<(f64, f64)>> = Vec::new();
    group.bench_function("rounds", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut round = vec![(0.0, 0.0); n];
                let first = rounds.len() % n;
                for k in 0..n {
                    let at = (first + k) % n;
                    let contestant = &mut contestants[at];
                    let mut visit: Vec<f64> = (0..VISIT)
                        .map(|_| {
                            let timed = (contestant.chunk)();
                            total += timed;
                            timed.as_secs_f64() / contestant.items as f64
                        })
                        .collect();
                    let cold = visit.remove(0);
                    round[at] = (cold, median(visit));
                }
                rounds.push(round);
            }
            total
        })
    });
    group.finish();
    if rounds.is_empty() {
        return; // filtered out
    }
    let ns = |secs: f64| secs * 1e9;
    let ours = contestants[0].name;
    println!(
        "{group_name}: {} interleaved rounds of {VISIT} chunks per contestant; ratios are the \
         peer's time per {unit} ÷ {ours}'s in the same round (above 1: {ours} is faster)",
        rounds.len()
    );
    for (at, Contestant { name, .. }) in contestants.iter().enumerate() {
        let warm = median(rounds.iter().map(|r| ns(r[at].1)).collect());
        let cold = median(rounds.iter().map(|r| ns(r[at].0)).collect());
        let warm_ratio = median(rounds.iter().map(|r| r[at].1 / r[0].1).collect());
        let cold_ratio = median(rounds.iter().map(|r| r[at].0 / r[0].0).collect());
        println!(
            "{group_name}/{name}: warm chunk median {warm:.2} ns/{unit}, ratio \
             {warm_ratio:.2}; cold {cold:.2} ns/{unit}, ratio {cold_ratio:.2}"
        );
    }
}

/// The median of `values` (the upper one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_unstable_by(f64::total_cmp);
    values[values.len() / 2]
}
