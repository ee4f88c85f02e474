//! `tabswarm-peer`: the client built natively, for GPU owners and for experiments.
//!
//! - `run`         join the swarm through a relay and learn with everyone (SAPO over gossip)
//! - `pretrain`    make the swarm's base checkpoint (the warm start), deterministic from a seed
//! - `experiment`  the SAPO experiment: simulated peers sharing rollouts in memory (docs/learning.md)
//! - `report`      redraw an experiment's table and plot from its JSON
//! - `download`    the relay's swarm model as a checkpoint file
//!
//! The learning is `tabswarm-learn`'s, the network `tabswarm-net`'s; this crate is the command line.

// The doc comments on the clap types are the `--help` text, where `<id>` and `<out>.json` are
// placeholders a user reads as written, not HTML for rustdoc.
#![allow(rustdoc::invalid_html_tags)]

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand, ValueEnum};
use tabswarm_aggregate::{OuterConfig, Rule};
use tabswarm_learn::experiment::{Arm, ArmResult, Attack, SwarmSync, run_arm, summary};
use tabswarm_learn::pretrain::{PretrainConfig, pretrain};
use tabswarm_learn::run::Backend;
use tabswarm_learn::{Curriculum, HeldOut, RlConfig, Selection};
use tabswarm_model::{ModelSize, checkpoint};
use tabswarm_protocol::tasks::Family;

#[derive(Debug, Parser)]
#[command(name = "tabswarm-peer", version, about = "Tabswarm's client, natively: warm start and experiments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    /// The pure-Rust CPU backend (burn flex).
    Cpu,
    /// The default wgpu adapter (Vulkan, Metal, DX12).
    Gpu,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Size {
    Tiny,
    Small,
    Default,
}

impl Size {
    fn model(self) -> ModelSize {
        match self {
            Self::Tiny => ModelSize::Tiny,
            Self::Small => ModelSize::Small,
            Self::Default => ModelSize::Default,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join the swarm through a relay and learn: each round answers questions, publishes its
    /// rollouts and trains on four of its own groups and four verified groups from others.
    Run {
        /// A relay: its URL (http://host:port — the bootstrap list and base checkpoint are read
        /// from it) or a multiaddr ending in /p2p/<id>. Repeat to give fallbacks.
        #[arg(long = "relay", required = true, value_name = "URL|MULTIADDR")]
        relays: Vec<String>,
        /// Start from this checkpoint instead of the relay's base.
        #[arg(long)]
        base: Option<PathBuf>,
        /// Rounds to run (0: until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        rounds: u32,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        /// Comma-separated task families (default: all).
        #[arg(long, value_delimiter = ',')]
        families: Vec<Family>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A file holding the hex private key of the wallet to credit (one line, 0x optional;
        /// keep it private, e.g. chmod 600). The peer key is bound to it by an EIP-712
        /// signature. Without it the peer learns from the swarm but does not share.
        #[arg(long, env = "TABSWARM_WALLET_KEY", value_name = "FILE")]
        wallet_key: Option<PathBuf>,
        /// Write my model (the policy as trained at the end) to this checkpoint file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Download the relay's swarm model (its current version) as a checkpoint file, checked
    /// against the version's hash.
    Download {
        /// The relay's URL (http://host:port).
        #[arg(long)]
        relay: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Train the base checkpoint: supervised on generated questions until the mean greedy
    /// accuracy at the middle difficulty reaches --target (or --max-steps).
    Pretrain {
        /// Where to write the checkpoint.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_enum, default_value = "tiny")]
        size: Size,
        #[arg(long, default_value_t = 0.3)]
        target: f32,
        #[arg(long, default_value_t = 4000)]
        max_steps: u64,
        /// Peak learning rate (AdamW).
        #[arg(long, default_value_t = 3e-3)]
        lr: f64,
        /// Steps of linear warm-up to the peak learning rate.
        #[arg(long, default_value_t = 0)]
        warmup: u64,
        /// Decay the learning rate along a cosine to a tenth of the peak at --max-steps.
        #[arg(long)]
        cosine: bool,
        /// Sequences per step.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Steps between evaluations (the run stops at the first one at --target).
        #[arg(long, default_value_t = 100)]
        eval_every: u64,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        /// Comma-separated task families (default: all).
        #[arg(long, value_delimiter = ',')]
        families: Vec<Family>,
    },
    /// Run the SAPO experiment from a base checkpoint and write its results as JSON, a Markdown
    /// table and an SVG plot.
    Experiment {
        /// The base checkpoint every peer starts from (from `pretrain`).
        #[arg(long)]
        base: PathBuf,
        #[arg(long, default_value_t = 8)]
        peers: usize,
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        /// Comma-separated seeds; each configuration runs once per seed.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        seeds: Vec<u64>,
        /// Local/external splits, e.g. 8/0,4/4.
        #[arg(long, value_delimiter = ',', default_value = "8/0,6/2,4/4,2/6")]
        splits: Vec<String>,
        /// Questions are drawn at levels 1..=this.
        #[arg(long, default_value_t = tabswarm_protocol::tasks::MID_DIFFICULTY)]
        max_difficulty: u8,
        /// Completions per question.
        #[arg(long, default_value_t = 8)]
        group_size: usize,
        #[arg(long, default_value_t = 3e-4)]
        learning_rate: f64,
        /// Weight of partial credit (the share of an answer's characters right, units aligned)
        /// added to each completion's reward for training only; 0 trains on the verified reward.
        #[arg(long, default_value_t = 0.0)]
        partial_credit: f32,
        /// How the I and J groups are picked.
        #[arg(long, value_enum, default_value = "prefer-signal")]
        selection: SelectionArg,
        /// Groups per GRPO step (0: one step per round on everything selected).
        #[arg(long, default_value_t = 0)]
        groups_per_step: usize,
        /// Configurations run side by side (one CPU core each).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Output prefix: writes <out>.json, <out>.md and <out>.svg.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        /// Comma-separated task families (default: all).
        #[arg(long, value_delimiter = ',')]
        families: Vec<Family>,
        /// Named configurations instead of --splits: solo (8/0), sapo (4/4), meta (8/0 + the swarm
        /// model), sapo+meta (4/4 + the swarm model). Judged on a held-out set; writes
        /// <out>.json (summary), <out>-runs.json (every run), <out>.md and <out>.svg.
        #[arg(long, value_delimiter = ',')]
        configs: Vec<String>,
        /// Rounds between swarm-model syncs (H).
        #[arg(long, default_value_t = 10)]
        sync_every: u64,
        /// How the swarm model aggregates updates.
        #[arg(long, value_enum, default_value = "clipped-mean")]
        rule: RuleArg,
        /// Outer learning rate (the relay's default; DiLoCo uses 0.7).
        #[arg(long, default_value_t = OuterConfig::default().outer_lr)]
        outer_lr: f32,
        /// Outer Nesterov momentum (the relay's default; DiLoCo uses 0.9).
        #[arg(long, default_value_t = OuterConfig::default().momentum)]
        momentum: f32,
        /// Refuse a minority of updates whose cosine with the swarm's heading (−velocity) is below
        /// this (the relay's default; `--min-heading=-1` turns the screen off, as before 2026-12-07).
        #[arg(long, default_value_t = OuterConfig::default().min_heading, allow_negative_numbers = true, value_parser = tabswarm_aggregate::parse_cosine)]
        min_heading: f32,
        /// Evaluate the held-out set every this many rounds.
        #[arg(long, default_value_t = 10)]
        eval_every: u64,
        /// Levels of the held-out set (every family at each).
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        heldout_levels: Vec<u8>,
        /// Held-out questions per family and level.
        #[arg(long, default_value_t = 16)]
        heldout_per_level: usize,
        /// Adapt each family's level to keep the success rate in 20–80 % (up to --max-difficulty).
        #[arg(long)]
        curriculum: bool,
        /// With --curriculum: a family mastered at --max-difficulty is asked on one of every N of
        /// its turns, the others going to families not mastered (1: every turn).
        #[arg(long, value_name = "N", default_value_t = 1, requires = "curriculum",
              value_parser = clap::value_parser!(u32).range(1..))]
        revisit_mastered: u32,
        /// With --curriculum: below this success rate a family's level goes down one (the band's
        /// top stays 0.8).
        #[arg(long, value_name = "RATE", default_value_t = Curriculum::default().low, requires = "curriculum")]
        curriculum_low: f32,
        /// Make peer 0 attack the swarm model: scale:<k>, sign-flip or random.
        #[arg(long)]
        attack: Option<String>,
        /// "Join for an hour": in meta configurations a peer joins for the last K rounds, and a
        /// peer given the same K rounds alone from the base is run to compare.
        #[arg(long, value_name = "K")]
        join: Option<u64>,
        /// With --configs: each peer asks only K of the families (blocks rotating from peer to
        /// peer, so each family is asked by peers × K / families peers) with the same question
        /// budget, so each of its families gets more questions per round; the held-out set keeps
        /// every family.
        #[arg(long, value_name = "K")]
        families_per_peer: Option<usize>,
    },
    /// Rewrite the table and plot of earlier `experiment`s from their JSON; several runs (one seed
    /// each, say) are summarised together.
    Report {
        /// The `.json` of a `--splits` experiment, or the `-runs.json` of a `--configs` one; repeat
        /// the flag to merge runs.
        #[arg(long, required = true)]
        results: Vec<PathBuf>,
        /// Output prefix: writes <out>.md and <out>.svg, and for `--configs` runs also <out>.json
        /// (the summary) and <out>-runs.json (every run given).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuleArg {
    Mean,
    ClippedMean,
    TrimmedMean,
    Median,
}

impl RuleArg {
    fn rule(self) -> Rule {
        match self {
            Self::Mean => Rule::Mean,
            Self::ClippedMean => Rule::ClippedMean { multiplier: 2.0 },
            Self::TrimmedMean => Rule::TrimmedMean { trim: 1 },
            Self::Median => Rule::Median,
        }
    }
}

fn parse_attack(text: &str) -> Result<Attack, String> {
    match text {
        "sign-flip" => Ok(Attack::SignFlip),
        "random" => Ok(Attack::Random),
        _ => text
            .strip_prefix("scale:")
            .and_then(|k| k.parse::<f32>().ok())
            .filter(|k| k.is_finite())
            .map(Attack::Scale)
            .ok_or_else(|| format!("--attack {text:?}: expected scale:<factor>, sign-flip or random")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SelectionArg {
    Uniform,
    PreferSignal,
}

impl BackendArg {
    /// The burn device to train on, and the backend the run reports.
    fn device(self) -> (Device, Backend) {
        match self {
            Self::Cpu => (Device::flex(), Backend::Cpu),
            Self::Gpu => (Device::wgpu(Default::default()), Backend::Wgpu),
        }
    }
}

fn device(backend: BackendArg) -> Device {
    backend.device().0
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tabswarm-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The name of the comparison run for `--join`: one peer alone from the base for K rounds.
const JOIN_SOLO: &str = "join-solo";

/// Rounds between looks at the relay's `/api/model` when no relay announced a newer version.
const VERSION_POLL_ROUNDS: u64 = 10;

/// The file name of `path` without its extension.
fn stem(path: &std::path::Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "experiment".into())
}

fn parse_split(split: &str) -> Result<(usize, usize), String> {
    let parse = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("split {split:?} is not I/J (e.g. 4/4)"));
    let (i, j) = split.split_once('/').ok_or_else(|| format!("split {split:?} is not I/J (e.g. 4/4)"))?;
    Ok((parse(i)?, parse(j)?))
}

/// Writes `contents` to `path`, or says which file could not be written.
fn write_file(path: &std::path::Path, contents: impl AsRef<[u8]>) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_report(results: &[ArmResult], families: &[Family], out: &std::path::Path) -> Result<String, String> {
    let table = summary::markdown(results, families);
    write_file(&out.with_extension("md"), &table)?;
    write_file(&out.with_extension("svg"), summary::svg(results))?;
    Ok(table)
}

/// Writes what a `--configs` experiment reports: `<out>-runs.json` (every run), `<out>.json` (the
/// summary in the shape, with the join run's result), `<out>.md` and `<out>.svg`; returns
/// the table.
fn write_configs(results: Vec<ArmResult>, families: &[Family], out: &std::path::Path) -> Result<String, String> {
    let runs = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    write_file(&out.with_file_name(format!("{}-runs.json", stem(out))), runs)?;
    let (solo_join, results): (Vec<ArmResult>, Vec<ArmResult>) = results.into_iter().partition(|r| r.name == JOIN_SOLO);
    let summaries = summary::configs(&results);
    let joined = summary::join(&results, &solo_join);
    let json = serde_json::json!({ "configs": summaries, "join": joined });
    write_file(&out.with_extension("json"), serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?)?;
    let mut table = summary::swarm_markdown(&summaries, families);
    if let Some(j) = &joined {
        table.push_str(&format!(
            "\njoin for the last {} rounds: held-out {:.1}% (from the swarm, {} versions fed) against {:.1}% alone from the base\n",
            j.rounds,
            j.joined_accuracy * 100.0,
            j.versions_fed.len(),
            j.solo_accuracy * 100.0
        ));
    }
    write_file(&out.with_extension("md"), &table)?;
    write_file(&out.with_extension("svg"), summary::heldout_svg(&results))?;
    Ok(table)
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run { relays, base, rounds, backend, families, seed, wallet_key, out } => {
            swarm_peer(SwarmRun { relays, base, rounds, backend, families, seed, wallet_key, out })
        }
        Command::Download { relay, out } => download(&relay, &out),
        Command::Report { results: paths, out } => {
            let mut results = Vec::new();
            for path in &paths {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let runs: Vec<ArmResult> = serde_json::from_str(&text).map_err(|e| {
                    format!(
                        "{} is not the runs of an experiment (its .json, or -runs.json for --configs): {e}",
                        path.display()
                    )
                })?;
                results.extend(runs);
            }
            let mut families: Vec<Family> = results.iter().flat_map(|r| r.final_accuracy.keys().copied()).collect();
            families.sort();
            families.dedup();
            if results.iter().any(|r| !r.heldout.is_empty()) {
                println!("{}", write_configs(results, &families, &out)?);
            } else {
                println!("{}", write_report(&results, &families, &out)?);
            }
            Ok(())
        }
        Command::Pretrain {
            out,
            seed,
            size,
            target,
            max_steps,
            lr,
            warmup,
            cosine,
            batch,
            eval_every,
            backend,
            families,
        } => {
            let size = size.model();
            let families = if families.is_empty() { Family::ALL.to_vec() } else { families };
            let config = PretrainConfig {
                seed,
                target_accuracy: target,
                max_steps,
                families,
                learning_rate: lr,
                warmup_steps: warmup,
                cosine_decay: cosine,
                batch,
                eval_every,
                ..PretrainConfig::default()
            };
            let device = device(backend);
            let model_config = size.config();
            let started = std::time::Instant::now();
            let (model, report) =
                pollster::block_on(pretrain(&model_config, &config, &device, &mut |step, loss, acc| {
                    let mean = acc.values().sum::<f32>() / acc.len().max(1) as f32;
                    let families: Vec<String> = acc.iter().map(|(f, a)| format!("{f} {:.0}%", a * 100.0)).collect();
                    eprintln!(
                        "step {step:>5}  loss {loss:.3}  mid-level accuracy {:.1}%  ({})  {:.0} s",
                        mean * 100.0,
                        families.join(", "),
                        started.elapsed().as_secs_f64()
                    );
                }))
                .map_err(|e| e.to_string())?;
            let bytes = checkpoint::save(&model, &model_config, report.steps).map_err(|e| e.to_string())?;
            write_file(&out, &bytes)?;
            let (header, _) = checkpoint::read_header(&bytes).map_err(|e| e.to_string())?;
            if !report.reached_target {
                eprintln!("note: stopped at --max-steps {max_steps} below the target of {:.0}%", target * 100.0);
            }
            println!(
                "wrote {} ({} bytes, {} steps, mid-level accuracy {:.1}%, sha256 {})",
                out.display(),
                bytes.len(),
                report.steps,
                report.mean_accuracy * 100.0,
                header.payload_sha256
            );
            Ok(())
        }
        Command::Experiment {
            base,
            peers,
            rounds,
            seeds,
            splits,
            max_difficulty,
            group_size,
            learning_rate,
            partial_credit,
            selection,
            groups_per_step,
            threads,
            out,
            backend,
            families,
            configs,
            sync_every,
            rule,
            outer_lr,
            momentum,
            min_heading,
            eval_every,
            heldout_levels,
            heldout_per_level,
            curriculum,
            revisit_mastered,
            curriculum_low,
            attack,
            join,
            families_per_peer,
        } => {
            let families = if families.is_empty() { Family::ALL.to_vec() } else { families };
            let bytes = std::fs::read(&base).map_err(|e| format!("cannot read {}: {e}", base.display()))?;
            let splits = splits.iter().map(|s| parse_split(s)).collect::<Result<Vec<_>, _>>()?;
            let selection = match selection {
                SelectionArg::Uniform => Selection::Uniform,
                SelectionArg::PreferSignal => Selection::PreferSignal,
            };
            // Every arm's round, differing only in the split, its question budget and the curriculum.
            let rl_config = |questions_per_round, local, external, curriculum: bool| RlConfig {
                families: families.clone(),
                questions_per_round,
                group_size,
                max_difficulty,
                local,
                external,
                learning_rate,
                partial_credit,
                selection,
                groups_per_step,
                curriculum: curriculum.then_some(Curriculum {
                    low: curriculum_low,
                    revisit: revisit_mastered,
                    ..Curriculum::default()
                }),
                ..RlConfig::default()
            };
            if let Some(k) = families_per_peer {
                if configs.is_empty() {
                    return Err("--families-per-peer needs --configs".into());
                }
                if k == 0 || k > families.len() {
                    return Err(format!(
                        "--families-per-peer {k}: choose 1 to {} (the families asked)",
                        families.len()
                    ));
                }
            }
            if !configs.is_empty() {
                let attack = attack.as_deref().map(parse_attack).transpose()?;
                if sync_every == 0 || eval_every == 0 {
                    return Err("--sync-every and --eval-every must be at least 1".into());
                }
                let outer =
                    OuterConfig { rule: rule.rule(), outer_lr, momentum, min_heading, ..OuterConfig::default() };
                let heldout = HeldOut { levels: heldout_levels, per_level: heldout_per_level };
                let mut arms = Vec::new();
                for &seed in &seeds {
                    for name in &configs {
                        let ((local, external), meta) = match name.as_str() {
                            "solo" => ((8, 0), false),
                            "sapo" => ((4, 4), false),
                            "meta" => ((8, 0), true),
                            "sapo+meta" => ((4, 4), true),
                            other => {
                                return Err(format!("--configs {other:?}: expected solo, sapo, meta or sapo+meta"));
                            }
                        };
                        let rl = rl_config(8, local, external, curriculum);
                        rl.validate().map_err(|e| e.to_string())?;
                        arms.push(Arm {
                            name: name.clone(),
                            peers,
                            rounds,
                            seed,
                            rl,
                            eval_per_family: 32,
                            swarm: meta.then(|| SwarmSync { every: sync_every, outer: outer.clone() }),
                            heldout: Some((heldout.clone(), eval_every)),
                            attack: if meta { attack } else { None },
                            join: join.filter(|_| meta).map(|k| (rounds.saturating_sub(k), k)),
                            families_per_peer,
                        });
                    }
                    if let Some(k) = join {
                        let rl = rl_config(8, 8, 0, curriculum);
                        arms.push(Arm {
                            name: JOIN_SOLO.into(),
                            peers: 1,
                            rounds: k,
                            seed,
                            rl,
                            eval_per_family: 32,
                            heldout: Some((heldout.clone(), k)),
                            ..Arm::default()
                        });
                    }
                }
                let results = run_parallel(&bytes, arms, threads.max(1), backend)?;
                println!("{}", write_configs(results, &families, &out)?);
                return Ok(());
            }
            let mut arms = Vec::new();
            for &seed in &seeds {
                for &(local, external) in &splits {
                    let questions = splits.iter().map(|(i, j)| i + j).max().unwrap_or(8);
                    let rl = rl_config(questions, local, external, false);
                    arms.push(Arm {
                        name: format!("{local}/{external}"),
                        peers,
                        rounds,
                        seed,
                        rl,
                        eval_per_family: 32,
                        ..Arm::default()
                    });
                }
            }
            let results = run_parallel(&bytes, arms, threads.max(1), backend)?;
            let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
            write_file(&out.with_extension("json"), json)?;
            println!("{}", write_report(&results, &families, &out)?);
            Ok(())
        }
    }
}

fn run_parallel(base: &[u8], arms: Vec<Arm>, threads: usize, backend: BackendArg) -> Result<Vec<ArmResult>, String> {
    let queue = std::sync::Mutex::new(arms.into_iter().enumerate().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some((index, arm)) = next else { break };
                    let device = device(backend);
                    let outcome =
                        checkpoint::load(base, None, &device).map_err(|e| e.to_string()).and_then(|(model, _)| {
                            let label = format!("{} seed {}", arm.name, arm.seed);
                            pollster::block_on(run_arm(&model, &arm, &device, &mut |round, reward| {
                                if (round + 1) % 10 == 0 {
                                    eprintln!(
                                        "{label}: round {:>4}  mean reward {reward:.3}  ({:.0} s)",
                                        round + 1,
                                        started.elapsed().as_secs_f64()
                                    );
                                }
                            }))
                            .map_err(|e| format!("{label}: {e}"))
                        });
                    if let Ok(mut r) = results.lock() {
                        r.push((index, outcome));
                    }
                }
            });
        }
    });
    let mut results = results.into_inner().map_err(|_| "a worker thread panicked".to_string())?;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[derive(Debug)]
struct SwarmRun {
    relays: Vec<String>,
    base: Option<PathBuf>,
    rounds: u32,
    backend: BackendArg,
    families: Vec<Family>,
    seed: u64,
    wallet_key: Option<PathBuf>,
    out: Option<PathBuf>,
}

/// `tabswarm-peer download`: the swarm model's current version, its parameters checked against
/// the version's name before the file is written.
fn download(relay: &str, out: &std::path::Path) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    let found = runtime.block_on(tabswarm_net::native::fetch_model(relay, true))?;
    let Some((info, Some(bytes))) = found else {
        return Err(format!("{relay} runs no swarm model (its operator starts it with --base-checkpoint)"));
    };
    let (model, _) = checkpoint::load(&bytes, None, &Device::flex()).map_err(|e| e.to_string())?;
    let flat = pollster::block_on(tabswarm_model::params::flatten(&model)).map_err(|e| e.to_string())?;
    let hash = tabswarm_protocol::update::params_hash(&flat);
    if hash != info.hash {
        return Err(format!("the relay's checkpoint for version {} holds parameters hashing to {hash}", info.hash));
    }
    write_file(out, &bytes)?;
    println!(
        "wrote swarm model version {} ({}) to {} ({} bytes); held-out accuracy {}",
        info.number,
        info.hash,
        out.display(),
        bytes.len(),
        describe_accuracy(&info.accuracy)
    );
    Ok(())
}

/// `mean 43.1% (add 20%, …)`, or `not evaluated yet`.
fn describe_accuracy(accuracy: &std::collections::BTreeMap<Family, f32>) -> String {
    if accuracy.is_empty() {
        return "not evaluated yet".into();
    }
    let mean = accuracy.values().sum::<f32>() / accuracy.len() as f32;
    let each: Vec<String> = accuracy.iter().map(|(f, a)| format!("{f} {:.0}%", a * 100.0)).collect();
    format!("{:.1}% ({})", mean * 100.0, each.join(", "))
}

/// Reads a wallet key file: 32 bytes as hex, `0x` optional, surrounding whitespace ignored.
fn read_wallet_key(path: &std::path::Path) -> Result<k256::ecdsa::SigningKey, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read --wallet-key {}: {e}", path.display()))?;
    let hex = text.trim().trim_start_matches("0x");
    let bytes: alloy_primitives::B256 = hex
        .parse()
        .map_err(|_| format!("--wallet-key {}: expected 64 hex digits (a secp256k1 private key)", path.display()))?;
    k256::ecdsa::SigningKey::from_slice(bytes.as_slice())
        .map_err(|_| format!("--wallet-key {}: not a valid secp256k1 private key", path.display()))
}

/// `tabswarm-peer run`: the network on a tokio runtime, the learning on this thread.
fn swarm_peer(args: SwarmRun) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use futures::{SinkExt, StreamExt};
    use tabswarm_learn::run::{RunPlan, TrainingRun};
    use tabswarm_learn::sync::SwarmSync;
    use tabswarm_net::native::UpdateOutcome;
    use tabswarm_net::{BINDING_VALIDITY_SECS, Inbox, NetStats, NodeCommand, NodeEvent, describe_connection, native};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))?;
    if let Some(bad) =
        args.relays.iter().find(|r| !(r.starts_with('/') || r.starts_with("http://") || r.starts_with("https://")))
    {
        return Err(format!(
            "--relay {bad}: expected a relay URL (http://host:port) or a multiaddr ending in /p2p/<peer id>"
        ));
    }
    let wallet = match &args.wallet_key {
        Some(path) => Some(read_wallet_key(path)?),
        None => None,
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let signing_key = key.clone();
    let model_relay = args.relays.iter().find(|r| r.starts_with("http")).cloned();
    let (addrs, base, accepts_unbound, binding) = runtime.block_on(async {
        let mut addrs = Vec::new();
        let mut base = None;
        let mut accepts_unbound = false;
        let mut binding = None;
        for relay in &args.relays {
            if relay.starts_with('/') {
                addrs.push(relay.parse().map_err(|e| format!("--relay {relay}: not a multiaddr: {e}"))?);
                continue;
            }
            match native::fetch_bootstrap(relay).await {
                Ok((list, accepts)) => {
                    addrs.extend(list);
                    accepts_unbound |= accepts;
                }
                Err(e) => eprintln!("warning: {e}"),
            }
            if let (Some(wallet), None) = (&wallet, &binding) {
                let domain = native::fetch_identity(relay).await?;
                binding = Some(native::bind_with_key(&domain, wallet, &key, BINDING_VALIDITY_SECS)?);
            }
            if base.is_none() && args.base.is_none() {
                base = native::fetch_base(relay).await?;
            }
        }
        Ok::<_, String>((addrs, base, accepts_unbound, binding))
    })?;
    // A newcomer starts from the swarm model's latest version, not the base.
    let swarm_model = match &model_relay {
        Some(url) => runtime.block_on(native::fetch_model(url, args.base.is_none()))?,
        None => None,
    };
    let base_bytes = match (&args.base, base, &swarm_model) {
        (Some(path), _, _) => Some(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?),
        (None, _, Some((info, Some(bytes)))) if info.number > 0 => {
            eprintln!(
                "starting from swarm model version {} ({}), made from {} updates; held-out accuracy {}",
                info.number,
                info.hash,
                info.updates,
                describe_accuracy(&info.accuracy)
            );
            Some(bytes.clone())
        }
        (None, Some((info, bytes)), _) => {
            eprintln!("base checkpoint from the relay: step {}, sha256 {} (verified)", info.step, info.sha256);
            Some(bytes)
        }
        (None, None, _) => None,
    };
    let backend_label = match args.backend {
        BackendArg::Cpu => "cpu",
        BackendArg::Gpu => "gpu",
    };
    if wallet.is_some() && binding.is_none() {
        return Err("--wallet-key needs a relay URL (http://…) to read what to sign from".into());
    }
    let binding_made = binding.is_some();
    let node = runtime.block_on(async { native::node(key, addrs, backend_label) })?.share_unbound(accepts_unbound);
    let (mut handle, node_future) = node.spawn();
    let peer_id = handle.peer_id.to_string();
    eprintln!("peer id {peer_id}");
    match binding {
        Some(binding) => {
            eprintln!("bound to wallet {} until unix time {}", binding.address, binding.binding.expires_at);
            runtime
                .block_on(handle.commands.send(NodeCommand::Bind(Box::new(binding))))
                .map_err(|_| "the network node stopped".to_owned())?;
        }
        None if accepts_unbound => {
            eprintln!("no --wallet-key: sharing rollouts uncredited (the relay accepts that)")
        }
        None => eprintln!(
            "no --wallet-key: learning from the swarm without sharing (relays take rollouts only from peers bound to a wallet)"
        ),
    }
    runtime.spawn(node_future);

    let inbox: Arc<Mutex<Inbox>> = Arc::default();
    let stats: Arc<Mutex<NetStats>> = Arc::default();
    // The highest swarm-model version a relay announced over gossip.
    let announced = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut events = handle.events;
    {
        let (inbox, stats, announced) = (Arc::clone(&inbox), Arc::clone(&stats), Arc::clone(&announced));
        runtime.spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    NodeEvent::State(state) => eprintln!("{}", describe_connection(&state).1),
                    NodeEvent::Stats(now) => {
                        if let Ok(mut s) = stats.lock() {
                            *s = now;
                        }
                    }
                    NodeEvent::Rollouts { groups, .. } => {
                        if let Ok(mut q) = inbox.lock() {
                            q.push(groups);
                        }
                    }
                    NodeEvent::ModelVersion(version) => {
                        announced.fetch_max(version.number, Ordering::SeqCst);
                    }
                }
            }
        });
        let stop = Arc::clone(&stop);
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopping after this round (Ctrl-C again to quit at once)");
                stop.store(true, Ordering::SeqCst);
                let _ = tokio::signal::ctrl_c().await;
                std::process::exit(130);
            }
        });
    }

    let (device, backend) = args.backend.device();
    let rounds = if args.rounds == 0 { u32::MAX } else { args.rounds };
    let families = if args.families.is_empty() { Family::ALL.to_vec() } else { args.families.clone() };
    let plan = RunPlan { rounds, seed: args.seed, peer: Some(peer_id.clone()), families: families.clone() };
    let mut run = match &base_bytes {
        Some(bytes) => TrainingRun::from_checkpoint(bytes, &device, backend, plan),
        None => {
            eprintln!("no base checkpoint: learning from a fresh tiny model");
            TrainingRun::fresh(&device, backend, ModelSize::Tiny, plan)
        }
    }
    .map_err(|e| e.to_string())?;
    eprintln!("training on {}", run.backend().label());
    // A peer the relay takes updates from feeds the swarm model; any other follows it, training on
    // each new version (what the swarm learned) without sending what it learned itself.
    let feeds = binding_made || accepts_unbound;
    let mut sync = match (&swarm_model, &model_relay) {
        (Some((info, _)), Some(_)) => {
            match pollster::block_on(SwarmSync::new(&run, &info.hash, info.number, info.sync_every)) {
                Ok(sync) if feeds => {
                    eprintln!("feeding the swarm model: an update every {} rounds", info.sync_every);
                    Some(sync)
                }
                Ok(sync) => {
                    eprintln!(
                        "following the swarm model without feeding it: the relay takes updates only from peers \
                         bound to a wallet (--wallet-key); this peer trains on from each new version"
                    );
                    Some(sync)
                }
                Err(e) => {
                    eprintln!("not following the swarm model: {e} (started from --base)");
                    None
                }
            }
        }
        _ => None,
    };
    let mut commands = handle.commands;
    let started = std::time::Instant::now();
    let now = move || started.elapsed().as_secs_f64() * 1e3;
    let size = pollster::block_on(run.size_rounds(&now)).map_err(|e| format!("sizing the rounds failed: {e}"))?;
    eprintln!("{}", size.reason);
    // Each family's curriculum level, printed when one moves.
    let mut levels: Option<String> = None;
    while !run.is_done() && !stop.load(Ordering::SeqCst) {
        let received = inbox.lock().map(|mut q| q.take()).unwrap_or_default();
        let round = pollster::block_on(run.step(&now, received)).map_err(|e| e.to_string())?;
        let _ = commands.try_send(NodeCommand::Publish(round.share));
        let _ = commands.try_send(NodeCommand::Describe {
            families: families.clone(),
            policy_version: round.progress.policy_version,
        });
        let net = stats.lock().map(|s| s.describe()).unwrap_or_default();
        let p = &round.progress;
        println!(
            "round {:>5}  reward {:.3}  trained on {} of {} groups from others  |  {net}",
            p.round, p.reward, p.external_trained, p.received
        );
        let now_levels = tabswarm_learn::run::describe_levels(&p.accuracy);
        if now_levels != levels {
            if let Some(now) = &now_levels {
                println!("levels: {now}");
            }
            levels = now_levels;
        }
        if let (Some(state), Some(url)) = (sync.as_mut(), &model_relay) {
            if feeds && state.round_done() {
                let update = pollster::block_on(state.update(&run, &peer_id)).map_err(|e| e.to_string())?;
                let signed = tabswarm_protocol::update::sign(&update, &signing_key).map_err(|e| e.to_string())?;
                let bytes = signed.len();
                match runtime.block_on(native::post_update(url, signed)) {
                    Ok(UpdateOutcome::Accepted(a)) => {
                        state.accepted += 1;
                        println!(
                            "update for swarm version {} accepted ({bytes} bytes; {} waiting for the step)",
                            state.number, a.pending
                        );
                    }
                    Ok(UpdateOutcome::Refused(e)) => println!("update refused: {} ({})", e.message, e.error),
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
            // Asked when a relay announced a newer version, and every few rounds in case an
            // announcement was missed.
            let due = announced.load(Ordering::SeqCst) > state.number || u64::from(p.round) % VERSION_POLL_ROUNDS == 0;
            match if due { runtime.block_on(native::fetch_model(url, false)) } else { Ok(None) } {
                Ok(Some((info, _))) if info.number > state.number => {
                    let moved = runtime.block_on(native::fetch_version(url, &info)).and_then(|bytes| {
                        let config = run.config().clone();
                        pollster::block_on(state.adopt(&mut run, &config, &bytes, &info.hash, info.number))
                            .map_err(|e| e.to_string())
                            .map(|()| info)
                    });
                    match moved {
                        Ok(info) => println!(
                            "moved to swarm version {} ({}), {} updates from {} peers; held-out accuracy {}",
                            info.number,
                            &info.hash[..12],
                            info.updates,
                            info.contributors.len(),
                            describe_accuracy(&info.accuracy)
                        ),
                        Err(e) => eprintln!("warning: cannot move to the new swarm version: {e}"),
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("warning: {e}"),
            }
        }
    }
    if let Some(path) = &args.out {
        let bytes = pollster::block_on(run.checkpoint()).map_err(|e| e.to_string())?;
        write_file(path, &bytes)?;
        println!("wrote my model to {} ({} bytes)", path.display(), bytes.len());
    }
    match &sync {
        Some(state) if feeds => println!(
            "swarm model: {} updates sent, {} accepted; training on version {} at the end",
            state.sent, state.accepted, state.number
        ),
        Some(state) => println!("swarm model: followed, not fed; training on version {} at the end", state.number),
        None => {}
    }
    drop(commands);
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}
