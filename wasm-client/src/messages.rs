//! Messages between the page and its worker, and the words the page shows for them. The
//! learning run's own types (backend, progress) come from `tabswarm-learn`; this module only puts
//! them into messages and sentences.

use serde::{Deserialize, Serialize};
use tabswarm_learn::run::{Backend, RunProgress};
use tabswarm_model::ModelSize;
use tabswarm_protocol::rollout::{RolloutGroup, ScoredGroup};
use tabswarm_protocol::tasks::Posed;

/// The size the page multiplies unless `?n=` asks for another.
pub const DEFAULT_SIZE: usize = 512;
/// The largest `?n=` accepted: 2048² floats are 16 MiB per matrix, fine for any WebGPU device.
pub const MAX_SIZE: usize = 2048;

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Multiply two random n×n matrices.
    pub n: usize,
    /// Seed of the random matrices.
    pub seed: u64,
}

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerRequest {
    /// Run the matmul check.
    Check(CheckRequest),
    /// Train the policy, reporting after each step.
    Train(TrainRequest),
    /// Stop training after the current step.
    Stop,
    /// Serialise the last trained model as a checkpoint and send it to the page.
    SaveModel,
    /// Rollout groups other peers published, as the page's node verified and scored them; the next
    /// round trains on them without scoring them again.
    Received { groups: Vec<ScoredGroup> },
    /// Move the running training onto this swarm-model version (fetched and checked by the worker)
    /// after the current round.
    Adopt { hash: String, number: u64 },
    /// How much of the tab the run may take from the next round on (the widget's `budget`, and
    /// pausing while the tab is hidden, on a low battery or under pressure).
    Pace(Pace),
    /// Answer a typed question greedily (*Try the model*): with the running policy between two
    /// rounds, else the last run's model, else the model the relay serves.
    Ask { question: Posed },
}

/// The share of wall time a run computes, and whether it waits: after a round that took `t`, the
/// worker rests `t × (100 − budget) / budget` ([`rest_ms`]) and, while `paused`, does nothing until
/// resumed. The run keeps its place: a pause loses no round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pace {
    /// Percent of wall time spent computing, 1–100 (values outside are clamped).
    pub budget: u8,
    pub paused: bool,
}

impl Default for Pace {
    fn default() -> Self {
        Self { budget: 100, paused: false }
    }
}

/// How long to rest after a round that took `spent_ms`, so that computing takes `budget` percent of
/// wall time.
pub fn rest_ms(spent_ms: f64, budget: u8) -> f64 {
    let budget = f64::from(budget.clamp(1, 100));
    spent_ms.max(0.0) * (100.0 - budget) / budget
}

/// Learn for `rounds` rounds on `backend`: from the relay's base checkpoint when it serves one, else
/// from a fresh model of size `model`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub backend: Backend,
    pub model: ModelSize,
    pub rounds: u32,
    pub seed: u64,
    /// The page's libp2p peer id when it is connected to the swarm: the run then shares its groups
    /// under that id and learns from others'. `None`: learn alone.
    #[serde(default)]
    pub peer: Option<String>,
}

/// The run's progress as one line for the page, e.g. `WebGPU · round 3/10 · reward 0.525 …`.
pub fn progress_line(progress: &RunProgress) -> String {
    format!(
        "{} · round {}/{} · reward {:.3} (first round {:.3}) · {} GRPO steps · {:.2} rounds/s · {:.0} completions/s · {:.2}M parameters{}",
        backend_label(progress.backend),
        progress.round,
        progress.rounds,
        progress.reward,
        progress.first_reward,
        progress.policy_version,
        progress.rounds_per_second,
        progress.completions_per_second,
        progress.parameters as f64 / 1e6,
        if progress.received > 0 {
            format!(" · trained on {} of {} groups from other peers", progress.external_trained, progress.received)
        } else {
            String::new()
        }
    )
}

/// What the page calls a backend (its buttons read "Train on …"): the run's own name, except that
/// the CPU in a tab is burn's CPU backend compiled to wasm.
pub fn backend_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Cpu => "CPU (wasm)",
        other => other.label(),
    }
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerReport {
    /// The worker has loaded its wasm and listens for a [`CheckRequest`].
    Ready,
    /// WebGPU gave us an adapter.
    Adapter(AdapterSummary),
    /// No WebGPU adapter; `reason` is what the browser said.
    NoWebGpu { reason: String },
    /// A finished matmul check.
    Check(MatmulCheck),
    /// Where learning starts from: the swarm model's latest version, the relay's verified base
    /// checkpoint, or a fresh model. `version`: the swarm-model version, when it is one.
    Base {
        description: String,
        sha256: Option<String>,
        #[serde(default)]
        version: Option<u64>,
    },
    /// How many questions a round asks on this device, and why (`tabswarm_learn::sizing`).
    Rounds { questions: u32, reason: String },
    /// A learning round finished.
    Train(RunProgress),
    /// How the run has held its [`Pace`] so far: milliseconds spent computing rounds, and wall
    /// time since its first round began (rests and pauses included), both on the worker's clock.
    /// `busy_ms / wall_ms` is the duty cycle the budget asks for.
    Paced { busy_ms: f64, wall_ms: f64 },
    /// This round's own rollout groups, for the page to publish to the swarm.
    Share { groups: Vec<RolloutGroup> },
    /// Training could not start or stopped with an error; `message` says what.
    TrainFailed { message: String },
    /// The fused kernels against their references on burn's WebGPU device.
    Fused(crate::fused_check::FusedCheck),
    /// The fused-kernel check could not run; `message` says why.
    FusedFailed { message: String },
    /// A checkpoint of the trained model; its bytes came in the message just before this one.
    ModelSaved(SavedModel),
    /// An update for the swarm model (`ModelUpdate::encode`, unsigned; its bytes came in the message
    /// just before this one), for the page to sign with the tab's key and post to the relay.
    Update { version: String, number: u64, bytes: usize },
    /// The model could not be saved; `message` says why.
    SaveFailed { message: String },
    /// The model's answer to an [`WorkerRequest::Ask`].
    Answer(TriedAnswer),
    /// The question could not be answered; `message` says why.
    AskFailed { message: String },
    /// Something failed; `message` says what.
    Failed { message: String },
}

/// The swarm model in one line: `Swarm model: version 3 (ab12cd34ef56…), made from 7 updates by 4
/// peers; held-out accuracy 44.1% (…)`, or what the relay has when it is still the base.
pub fn swarm_model_line(info: &tabswarm_protocol::api::ModelInfo) -> String {
    let short = info.hash.get(..12).unwrap_or(&info.hash);
    let accuracy = if info.accuracy.is_empty() {
        "held-out accuracy not evaluated yet".to_owned()
    } else {
        let mean = info.accuracy.values().sum::<f32>() / info.accuracy.len() as f32;
        let each: Vec<String> = info.accuracy.iter().map(|(f, a)| format!("{f} {:.0}%", a * 100.0)).collect();
        format!("held-out accuracy {:.1}% ({})", mean * 100.0, each.join(", "))
    };
    if info.number == 0 {
        format!(
            "Swarm model: still the base ({short}…); the first version comes once {} updates arrive. Its {accuracy}.",
            info.min_updates
        )
    } else {
        format!(
            "Swarm model: version {} ({short}…), made from {} updates by {} peers; {accuracy}.",
            info.number,
            info.updates,
            info.contributors.len()
        )
    }
}

/// What the model answered to a typed question, and whether it is right.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriedAnswer {
    pub question: Posed,
    /// The model's greedy completion, as text.
    pub answer: String,
    pub correct: bool,
    /// Which model answered, in words ("the policy this tab is training, after round 12").
    pub model: String,
}

impl TriedAnswer {
    /// Scores `answer` as the suite's verifier does.
    pub fn new(question: Posed, answer: String, model: String) -> Self {
        let correct = tabswarm_protocol::tasks::verify_posed(&question, &answer).correct;
        Self { question, answer, correct, model }
    }

    /// `12+34= → 46: right (the base model the relay serves).`
    pub fn describe(&self) -> String {
        let shown = if self.answer.is_empty() { "(nothing)" } else { self.answer.as_str() };
        let verdict =
            if self.correct { "right".to_owned() } else { format!("wrong, the answer is {}", self.question.answer) };
        format!("{} {shown} — {verdict} ({}, {}).", self.question.prompt, self.question.family, self.model)
    }
}

/// What the page needs to offer a checkpoint for download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedModel {
    pub file_name: String,
    pub bytes: usize,
    pub step: u64,
    /// Hex SHA-256 of the parameters (the checkpoint header's content hash).
    pub sha256: String,
}

impl SavedModel {
    /// Describes a checkpoint made by `tabswarm_model::checkpoint::save`.
    pub fn describe(checkpoint: &[u8]) -> Result<Self, tabswarm_model::ModelError> {
        let (header, _) = tabswarm_model::checkpoint::read_header(checkpoint)?;
        let short = header.payload_sha256.get(..12).unwrap_or(&header.payload_sha256).to_owned();
        Ok(Self {
            file_name: format!(
                "tabswarm-d{}-l{}-step{}-{short}.tswm",
                header.config.d_model, header.config.n_layers, header.step
            ),
            bytes: checkpoint.len(),
            step: header.step,
            sha256: header.payload_sha256,
        })
    }

    /// The link text, e.g. `Download the model (412 KB, step 25, sha256 3f9a…)`.
    pub fn link_text(&self) -> String {
        let short = self.sha256.get(..8).unwrap_or(&self.sha256);
        format!("Download the model ({} KB, step {}, sha256 {short}…)", self.bytes.div_ceil(1024), self.step)
    }
}

/// What the adapter says about itself (WebGPU exposes little; empty fields are omitted on screen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl AdapterSummary {
    /// Words a contributor understands for what wgpu reports.
    pub fn from_info(info: &tabswarm_kernels::wgpu::AdapterInfo) -> Self {
        Self::new(&info.name, info.backend, info.device_type, &info.driver)
    }

    fn new(
        name: &str,
        backend: tabswarm_kernels::wgpu::Backend,
        device_type: tabswarm_kernels::wgpu::DeviceType,
        driver: &str,
    ) -> Self {
        use tabswarm_kernels::wgpu::{Backend, DeviceType};
        let backend = match backend {
            Backend::BrowserWebGpu => "WebGPU".to_owned(),
            other => format!("{other:?}"),
        };
        let device_type = match device_type {
            DeviceType::DiscreteGpu => "discrete GPU",
            DeviceType::IntegratedGpu => "integrated GPU",
            DeviceType::VirtualGpu => "virtual GPU",
            DeviceType::Cpu => SOFTWARE_RENDERER,
            DeviceType::Other => "",
        };
        Self { name: name.to_owned(), backend, device_type: device_type.to_owned(), driver: driver.to_owned() }
    }

    /// One line for the page, e.g. `SwiftShader Device (Subzero) · BrowserWebGpu · Cpu`.
    pub fn describe(&self) -> String {
        let parts: Vec<&str> = [&self.name, &self.backend, &self.device_type, &self.driver]
            .into_iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() { "adapter details hidden by the browser".into() } else { parts.join(" · ") }
    }
}

/// Which backend the page starts training on, and why, in words for the contributor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendChoice {
    pub backend: Backend,
    pub reason: String,
}

impl BackendChoice {
    /// WebGPU when the browser gave a hardware adapter; the CPU when there is none, or when the
    /// adapter is a software renderer (SwiftShader, llvmpipe): that runs every GPU kernel on the
    /// CPU and trained the tiny model ~200× slower than the wasm CPU backend (docs/benchmarks.md).
    pub fn recommend(adapter: Option<&AdapterSummary>) -> Self {
        let Some(adapter) = adapter else {
            return Self {
                backend: Backend::Cpu,
                reason: "Training uses the CPU because this browser gave no WebGPU adapter.".into(),
            };
        };
        let name = adapter.name.to_ascii_lowercase();
        let software = adapter.device_type == SOFTWARE_RENDERER
            || ["swiftshader", "llvmpipe", "lavapipe", "software", "microsoft basic render"]
                .iter()
                .any(|marker| name.contains(marker));
        if software {
            let what = if adapter.name.is_empty() { "a software renderer" } else { adapter.name.as_str() };
            Self {
                backend: Backend::Cpu,
                reason: format!(
                    "Training uses the CPU: the WebGPU adapter here ({what}) draws with the CPU, not a GPU, and is far \
                     slower than the CPU path. You can still pick WebGPU."
                ),
            }
        } else {
            let what = [adapter.name.as_str(), adapter.device_type.as_str()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ");
            Self {
                backend: Backend::WebGpu,
                reason: format!("Training uses WebGPU on your GPU ({what}). You can switch to the CPU."),
            }
        }
    }

    /// The CPU, because the fused training kernels computed wrong values on this GPU (the page's
    /// check against their references): training there would learn from wrong gradients.
    pub fn kernels_disagree() -> Self {
        Self {
            backend: Backend::Cpu,
            reason: "Training uses the CPU: the training kernels gave wrong values on this GPU (see the check \
                     below), so WebGPU training is switched off."
                .into(),
        }
    }
}

const SOFTWARE_RENDERER: &str = "software renderer on the CPU";

/// Which engine produced a [`MatmulCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    WebGpu,
    Cpu,
}

/// The outcome of multiplying two n×n matrices and checking the result against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatmulCheck {
    pub engine: Engine,
    pub n: usize,
    /// Median milliseconds per multiply on `engine`.
    pub millis: f64,
    /// Milliseconds the CPU reference took (in wasm, in this worker).
    pub reference_millis: f64,
    /// Largest absolute difference from the reference.
    pub max_error: f32,
    /// The error bound the result had to meet.
    pub tolerance: f32,
}

impl MatmulCheck {
    /// Whether the result agreed with the reference.
    pub fn passed(&self) -> bool {
        self.max_error <= self.tolerance
    }

    pub fn gflops(&self) -> f64 {
        let n = self.n as f64;
        2.0 * n * n * n / (self.millis * 1e6)
    }

    /// The state the page's status element takes: `ok`, `cpu` or `error`.
    pub fn state(&self) -> &'static str {
        match (self.passed(), self.engine) {
            (false, _) => "error",
            (true, Engine::WebGpu) => "ok",
            (true, Engine::Cpu) => "cpu",
        }
    }

    /// The headline, e.g. `WebGPU OK — 512×512 matmul 4.1 ms, 65.3 GFLOP/s`.
    pub fn headline(&self) -> String {
        let n = self.n;
        let gflops = self.gflops();
        // Two decimals below 10 GFLOP/s, so small sizes on slow adapters do not read "0.0".
        let gflops = if gflops < 10.0 { format!("{gflops:.2}") } else { format!("{gflops:.1}") };
        let timing = format!("{n}×{n} matmul {:.1} ms, {gflops} GFLOP/s", self.millis);
        match (self.passed(), self.engine) {
            (true, Engine::WebGpu) => format!("WebGPU OK — {timing}"),
            (true, Engine::Cpu) => format!("CPU path OK — {timing}"),
            (false, engine) => format!(
                "{} result WRONG — max error {:.2e} exceeds {:.2e} ({timing})",
                if engine == Engine::WebGpu { "WebGPU" } else { "CPU" },
                self.max_error,
                self.tolerance
            ),
        }
    }

    /// The line under the headline.
    pub fn detail(&self) -> String {
        format!(
            "Checked against the Rust reference computed in this tab: max abs error {:.2e} (bound {:.2e}); the reference took {:.0} ms.",
            self.max_error, self.tolerance, self.reference_millis
        )
    }
}

/// Reads `n` from a page query string such as `?n=256`; returns the size and, if the value was
/// unusable, a sentence saying so.
pub fn size_from_query(query: &str) -> (usize, Option<String>) {
    let value = query
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "n")
        .map(|(_, value)| value);
    match value {
        None => (DEFAULT_SIZE, None),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_SIZE).contains(&n) => (n, None),
            _ => (DEFAULT_SIZE, Some(format!("?n={raw} is not a size from 1 to {MAX_SIZE}; using {DEFAULT_SIZE}."))),
        },
    }
}

/// Learning rounds when the page does not say (`?rounds=`).
pub const DEFAULT_TRAIN_ROUNDS: u32 = 100;

/// Reads `model=tiny|small|default` and `rounds=N` (1..=10000) from a page query string.
pub fn train_options_from_query(query: &str) -> (ModelSize, u32) {
    let mut size = ModelSize::Default;
    let mut steps = DEFAULT_TRAIN_ROUNDS;
    for (key, value) in query.trim_start_matches('?').split('&').filter_map(|pair| pair.split_once('=')) {
        match (key, value) {
            ("model", "tiny") => size = ModelSize::Tiny,
            ("model", "small") => size = ModelSize::Small,
            ("rounds", raw) => {
                if let Ok(n @ 1..=10_000) = raw.parse::<u32>() {
                    steps = n;
                }
            }
            _ => {}
        }
    }
    (size, steps)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_rest_after_a_round_holds_the_budget_share_of_wall_time() {
        use super::{Pace, WorkerRequest, rest_ms};
        assert_eq!(rest_ms(300.0, 100), 0.0, "a full budget never rests");
        assert_eq!(rest_ms(300.0, 50), 300.0);
        assert_eq!(rest_ms(300.0, 25), 900.0, "25 %: 300 ms of work in every 1200 ms");
        for budget in [1, 10, 25, 33, 50, 75, 99] {
            let (work, rest) = (120.0, rest_ms(120.0, budget));
            let share = work / (work + rest);
            assert!((share - f64::from(budget) / 100.0).abs() < 1e-9, "{budget}: {share}");
        }
        assert_eq!(rest_ms(100.0, 0), rest_ms(100.0, 1), "0 is clamped to 1 %");
        assert_eq!(rest_ms(100.0, 200), 0.0, "over 100 is clamped to 100 %");
        assert_eq!(rest_ms(-5.0, 50), 0.0, "a clock that went back rests nothing");
        let request = WorkerRequest::Pace(Pace { budget: 25, paused: true });
        let json = serde_json::to_string(&request).expect("json");
        assert_eq!(json, r#"{"kind":"pace","budget":25,"paused":true}"#);
        assert_eq!(serde_json::from_str::<WorkerRequest>(&json).expect("back"), request);
    }

    #[test]
    fn the_swarm_model_is_described_with_its_version_lineage_and_accuracy() {
        use tabswarm_protocol::api::ModelInfo;
        use tabswarm_protocol::tasks::Family;
        let mut info = ModelInfo {
            hash: "ab".repeat(32),
            number: 0,
            parent: None,
            contributors: vec![],
            updates: 0,
            url: "/api/checkpoint/x".into(),
            bytes: 100,
            accuracy: Default::default(),
            heldout: String::new(),
            sync_every: 10,
            min_updates: 2,
            pending: 0,
            recent: vec![],
        };
        assert_eq!(
            swarm_model_line(&info),
            "Swarm model: still the base (abababababab…); the first version comes once 2 updates arrive. \
             Its held-out accuracy not evaluated yet."
        );
        info.number = 3;
        info.updates = 7;
        info.contributors = vec!["a".into(), "b".into()];
        info.accuracy = [(Family::Add, 0.25), (Family::Compare, 0.5)].into_iter().collect();
        assert_eq!(
            swarm_model_line(&info),
            "Swarm model: version 3 (abababababab…), made from 7 updates by 2 peers; held-out accuracy 37.5% \
             (add 25%, compare 50%)."
        );
    }

    fn adapter(name: &str, device_type: tabswarm_kernels::wgpu::DeviceType) -> AdapterSummary {
        AdapterSummary::new(name, tabswarm_kernels::wgpu::Backend::BrowserWebGpu, device_type, "")
    }

    #[test]
    fn training_picks_webgpu_only_on_a_hardware_adapter() {
        use tabswarm_kernels::wgpu::DeviceType;
        let none = BackendChoice::recommend(None);
        assert_eq!(none.backend, Backend::Cpu);
        assert!(none.reason.contains("no WebGPU adapter"), "{}", none.reason);

        let swiftshader = BackendChoice::recommend(Some(&adapter("SwiftShader Device (Subzero)", DeviceType::Cpu)));
        assert_eq!(swiftshader.backend, Backend::Cpu);
        assert!(swiftshader.reason.contains("SwiftShader Device (Subzero)"), "{}", swiftshader.reason);
        // A software adapter that does not say so in its type is still recognised by name.
        let llvmpipe = BackendChoice::recommend(Some(&adapter("llvmpipe (LLVM 15.0.6, 256 bits)", DeviceType::Other)));
        assert_eq!(llvmpipe.backend, Backend::Cpu);

        let gpu = BackendChoice::recommend(Some(&adapter("NVIDIA GeForce RTX 4070", DeviceType::DiscreteGpu)));
        assert_eq!(gpu.backend, Backend::WebGpu);
        assert_eq!(
            gpu.reason,
            "Training uses WebGPU on your GPU (NVIDIA GeForce RTX 4070, discrete GPU). You can switch to the CPU."
        );
        // Browsers often hide the adapter's name: an unnamed hardware adapter still gets WebGPU.
        assert_eq!(BackendChoice::recommend(Some(&adapter("", DeviceType::IntegratedGpu))).backend, Backend::WebGpu);
    }

    use super::*;

    fn report(engine: Engine, max_error: f32) -> MatmulCheck {
        MatmulCheck { engine, n: 512, millis: 4.0, reference_millis: 300.0, max_error, tolerance: 1e-2 }
    }

    #[test]
    fn headline_reports_time_and_throughput() {
        let ok = report(Engine::WebGpu, 1e-4);
        assert_eq!(ok.headline(), "WebGPU OK — 512×512 matmul 4.0 ms, 67.1 GFLOP/s");
        assert_eq!(ok.state(), "ok");
        let cpu = report(Engine::Cpu, 0.0);
        assert!(cpu.headline().starts_with("CPU path OK — 512×512"), "{}", cpu.headline());
        assert_eq!(cpu.state(), "cpu");
    }

    #[test]
    fn a_wrong_result_is_said_in_words() {
        let bad = report(Engine::WebGpu, 0.5);
        assert!(!bad.passed());
        assert_eq!(bad.state(), "error");
        assert!(
            bad.headline().starts_with("WebGPU result WRONG — max error 5.00e-1 exceeds 1.00e-2"),
            "{}",
            bad.headline()
        );
        let nan = MatmulCheck { max_error: f32::INFINITY, ..report(Engine::WebGpu, 0.0) };
        assert!(!nan.passed());
    }

    #[test]
    fn reports_round_trip_as_tagged_json() {
        let messages = [
            WorkerReport::Ready,
            WorkerReport::NoWebGpu { reason: "navigator.gpu is undefined".into() },
            WorkerReport::Check(report(Engine::Cpu, 0.0)),
            WorkerReport::TrainFailed { message: "no adapter".into() },
            WorkerReport::Paced { busy_ms: 250.0, wall_ms: 1000.5 },
            WorkerReport::Rounds { questions: 8, reason: "8 questions a round (the swarm's default).".into() },
            WorkerReport::Adapter(AdapterSummary {
                name: "x".into(),
                backend: "BrowserWebGpu".into(),
                device_type: String::new(),
                driver: String::new(),
            }),
        ];
        for message in messages {
            let json = serde_json::to_string(&message).expect("serialize");
            assert_eq!(serde_json::from_str::<WorkerReport>(&json).expect("parse"), message);
        }
        assert_eq!(serde_json::to_string(&WorkerReport::Ready).expect("serialize"), r#"{"kind":"ready"}"#);
        assert!(serde_json::from_str::<WorkerReport>(r#"{"kind":"nonsense"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<WorkerReport>(r#"{"kind":"paced","busy_ms":1,"wall_ms":4}"#).expect("parse"),
            WorkerReport::Paced { busy_ms: 1.0, wall_ms: 4.0 }
        );
    }

    #[test]
    fn requests_round_trip_as_tagged_json() {
        let train = WorkerRequest::Train(TrainRequest {
            backend: Backend::WebGpu,
            model: ModelSize::Tiny,
            rounds: 5,
            seed: 1,
            peer: None,
        });
        let json = serde_json::to_string(&train).expect("serialize");
        assert_eq!(json, r#"{"kind":"train","backend":"web_gpu","model":"tiny","rounds":5,"seed":1,"peer":null}"#);
        assert_eq!(serde_json::from_str::<WorkerRequest>(&json).expect("parse"), train);
        // Rollout groups cross the page/worker boundary both ways: to the worker as the page's node
        // scored them, from it as text to publish.
        let groups = vec![RolloutGroup {
            question: tabswarm_protocol::tasks::QuestionId::new(tabswarm_protocol::tasks::Family::Add, 1, 2),
            peer: "12D3KooW".into(),
            policy_version: 3,
            completions: vec!["1".into(), "2".into()],
            rewards: Vec::new(),
        }];
        let scored = tabswarm_protocol::rollout::score_group(groups[0].clone()).expect("a valid group");
        let received = WorkerRequest::Received { groups: vec![scored] };
        let json = serde_json::to_string(&received).expect("serialize");
        assert_eq!(serde_json::from_str::<WorkerRequest>(&json).expect("parse"), received);
        let share = WorkerReport::Share { groups };
        let json = serde_json::to_string(&share).expect("serialize");
        assert!(json.starts_with(r#"{"kind":"share","groups":[{"question""#), "{json}");
        assert_eq!(serde_json::from_str::<WorkerReport>(&json).expect("parse"), share);
        // An older page that sends no peer trains alone.
        let old = r#"{"kind":"train","backend":"cpu","model":"tiny","rounds":5,"seed":1}"#;
        assert!(matches!(
            serde_json::from_str::<WorkerRequest>(old),
            Ok(WorkerRequest::Train(TrainRequest { peer: None, .. }))
        ));
        let check = WorkerRequest::Check(CheckRequest { n: 4, seed: 2 });
        let json = serde_json::to_string(&check).expect("serialize");
        assert_eq!(serde_json::from_str::<WorkerRequest>(&json).expect("parse"), check);
        assert!(serde_json::from_str::<WorkerRequest>(r#"{"kind":"train","backend":"tpu"}"#).is_err());
    }

    #[test]
    fn train_progress_reads_as_a_sentence() {
        let progress = RunProgress {
            backend: Backend::Cpu,
            parameters: 1_800_000,
            round: 3,
            rounds: 10,
            reward: 0.525,
            first_reward: 0.25,
            accuracy: vec![tabswarm_learn::run::FamilyAccuracy {
                family: tabswarm_protocol::tasks::Family::Add,
                correct: 3,
                asked: 4,
                level: Some(2),
                mastered: false,
            }],
            loss: Some(0.1),
            policy_version: 2,
            rounds_per_second: 2.0,
            completions_per_second: 128.0,
            received: 0,
            external_trained: 0,
            done: false,
        };
        assert_eq!(
            progress_line(&progress),
            "CPU (wasm) · round 3/10 · reward 0.525 (first round 0.250) · 2 GRPO steps · 2.00 rounds/s · 128 completions/s · 1.80M parameters"
        );
        let shared = RunProgress { received: 12, external_trained: 5, ..progress.clone() };
        assert!(progress_line(&shared).ends_with("1.80M parameters · trained on 5 of 12 groups from other peers"));
        assert_eq!(progress.accuracy[0].fraction(), 0.75);
        let json = serde_json::to_value(&progress.accuracy[0]).expect("json");
        assert_eq!(json, serde_json::json!({"family": "add", "correct": 3, "asked": 4, "level": 2, "mastered": false}));
        assert_eq!(progress.accuracy[0].level_label(), "2");
    }

    #[test]
    fn adapter_description_skips_empty_fields() {
        let summary = AdapterSummary {
            name: "SwiftShader".into(),
            backend: "BrowserWebGpu".into(),
            device_type: String::new(),
            driver: String::new(),
        };
        assert_eq!(summary.describe(), "SwiftShader · BrowserWebGpu");
        let hidden = AdapterSummary {
            name: String::new(),
            backend: String::new(),
            device_type: String::new(),
            driver: String::new(),
        };
        assert_eq!(hidden.describe(), "adapter details hidden by the browser");
    }

    #[test]
    fn adapter_info_is_put_in_words() {
        use tabswarm_kernels::wgpu::{Backend, DeviceType};
        let software = AdapterSummary::new("", Backend::BrowserWebGpu, DeviceType::Cpu, "");
        assert_eq!(software.describe(), "WebGPU · software renderer on the CPU");
        let native = AdapterSummary::new("llvmpipe", Backend::Vulkan, DeviceType::DiscreteGpu, "Mesa");
        assert_eq!(native.describe(), "llvmpipe · Vulkan · discrete GPU · Mesa");
    }

    #[test]
    fn train_options_come_from_the_query() {
        assert_eq!(train_options_from_query(""), (ModelSize::Default, DEFAULT_TRAIN_ROUNDS));
        assert_eq!(train_options_from_query("?model=tiny&rounds=20"), (ModelSize::Tiny, 20));
        assert_eq!(train_options_from_query("?model=small"), (ModelSize::Small, DEFAULT_TRAIN_ROUNDS));
        assert_eq!(train_options_from_query("?rounds=0&model=huge"), (ModelSize::Default, DEFAULT_TRAIN_ROUNDS));
        assert_eq!(train_options_from_query("?rounds=99999"), (ModelSize::Default, DEFAULT_TRAIN_ROUNDS));
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn a_saved_model_is_named_after_its_content() {
        use tabswarm_learn::run::{RunPlan, TrainingRun};
        // What the page offers for download: named after its content, stamped with the policy
        // version (GRPO steps taken).
        let device = burn::tensor::Device::flex();
        let mut run = TrainingRun::fresh(&device, Backend::Cpu, ModelSize::Tiny, RunPlan::solo(2, 1)).expect("run");
        let mut last = None;
        while !run.is_done() {
            last = Some(pollster::block_on(run.step(&|| 0.0, Vec::new())).expect("round").progress);
        }
        let last = last.expect("rounds");
        let bytes = pollster::block_on(run.checkpoint()).expect("checkpoint");
        let saved = SavedModel::describe(&bytes).expect("describe");
        assert_eq!((saved.step, saved.bytes), (last.policy_version, bytes.len()));
        assert!(saved.file_name.starts_with("tabswarm-d32-l2-step"), "{}", saved.file_name);
        assert!(saved.link_text().contains(&format!("step {}", saved.step)), "{}", saved.link_text());
        assert!(SavedModel::describe(&bytes[..10]).is_err());
    }

    #[test]
    fn size_query_is_validated() {
        assert_eq!(size_from_query(""), (DEFAULT_SIZE, None));
        assert_eq!(size_from_query("?n=256"), (256, None));
        assert_eq!(size_from_query("?x=1&n=3"), (3, None));
        for bad in ["?n=0", "?n=4096", "?n=abc", "?n=-1", "?n="] {
            let (n, warning) = size_from_query(bad);
            assert_eq!(n, DEFAULT_SIZE, "{bad}");
            assert!(warning.expect("warning").contains("is not a size from 1 to 2048"), "{bad}");
        }
    }

    #[test]
    fn a_tried_answer_is_scored_by_the_verifier_and_says_what_was_right() {
        use super::{TriedAnswer, WorkerReport, WorkerRequest};
        let question = tabswarm_protocol::tasks::pose("12 + 34").expect("a sum");
        let ask = WorkerRequest::Ask { question: question.clone() };
        let json = serde_json::to_string(&ask).expect("json");
        assert_eq!(serde_json::from_str::<WorkerRequest>(&json).expect("back"), ask);

        let right = TriedAnswer::new(question.clone(), "46".into(), "the base".into());
        assert!(right.correct);
        assert_eq!(right.describe(), "12+34= 46 — right (add, the base).");
        let wrong = TriedAnswer::new(question.clone(), "47".into(), "the base".into());
        assert!(!wrong.correct);
        assert_eq!(wrong.describe(), "12+34= 47 — wrong, the answer is 46 (add, the base).");
        let silent = TriedAnswer::new(question, String::new(), "the base".into());
        assert!(!silent.correct && silent.describe().contains("(nothing)"));
        let report = WorkerReport::Answer(right);
        let json = serde_json::to_string(&report).expect("json");
        assert_eq!(serde_json::from_str::<WorkerReport>(&json).expect("back"), report);
    }
}
