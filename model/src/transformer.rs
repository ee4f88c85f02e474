//! The policy: a decoder-only transformer (pre-norm blocks, learned positions) with an explicit
//! key/value cache for generation.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Gelu, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData, activation};
use tabswarm_kernels::fused;

use crate::ModelError;
use crate::tokenizer::Tokenizer;

/// The sizes a peer can train: the product default, or a tiny one for slow machines and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSize {
    /// [`ModelConfig`]'s defaults: about 1.8M parameters.
    Default,
    /// d_model 32, 2 layers, context 24: about 24k parameters.
    Tiny,
    /// d_model 64, 4 layers, context 32: about 0.2M parameters — between the two, for the swarm
    /// experiments this machine's CPU can run (docs/learning.md says why).
    Small,
}

impl ModelSize {
    /// The config of this size for the task tokenizer.
    pub fn config(self) -> ModelConfig {
        let base = ModelConfig::new(Tokenizer::new().vocab_size());
        match self {
            Self::Default => base,
            Self::Tiny => base.with_d_model(32).with_n_layers(2).with_n_heads(4).with_d_ff(64).with_max_seq_len(24),
            Self::Small => base.with_d_model(64).with_n_layers(4).with_n_heads(4).with_d_ff(256).with_max_seq_len(32),
        }
    }
}

/// Shape of the policy. The defaults give about 1.8M parameters with the task tokenizer.
#[derive(Config, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Token ids the model reads and predicts (the tokenizer's vocabulary size).
    pub vocab_size: usize,
    /// Width of the residual stream.
    #[config(default = 192)]
    pub d_model: usize,
    /// Transformer blocks.
    #[config(default = 4)]
    pub n_layers: usize,
    /// Attention heads per block; must divide `d_model`.
    #[config(default = 6)]
    pub n_heads: usize,
    /// Hidden width of each block's MLP.
    #[config(default = 768)]
    pub d_ff: usize,
    /// Longest sequence (prompt + completion) the model can see.
    #[config(default = 128)]
    pub max_seq_len: usize,
}

impl ModelConfig {
    /// Checks the numbers make a model; names the first that does not.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::InvalidConfig(why));
        for (name, value) in [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("max_seq_len", self.max_seq_len),
        ] {
            if value == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!("d_model {} is not divisible by n_heads {}", self.d_model, self.n_heads));
        }
        Ok(())
    }

    /// Builds a freshly initialised model on `device`.
    pub fn init(&self, device: &Device) -> Result<Model, ModelError> {
        self.validate()?;
        Ok(Model {
            token_embedding: EmbeddingConfig::new(self.vocab_size, self.d_model).init(device),
            position_embedding: EmbeddingConfig::new(self.max_seq_len, self.d_model).init(device),
            blocks: (0..self.n_layers)
                .map(|_| Block {
                    attn_norm: LayerNormConfig::new(self.d_model).with_epsilon(NORM_EPSILON).init(device),
                    attention: Attention {
                        qkv: LinearConfig::new(self.d_model, 3 * self.d_model).init(device),
                        out: LinearConfig::new(self.d_model, self.d_model).init(device),
                        n_heads: self.n_heads,
                    },
                    mlp_norm: LayerNormConfig::new(self.d_model).with_epsilon(NORM_EPSILON).init(device),
                    mlp_in: LinearConfig::new(self.d_model, self.d_ff).init(device),
                    mlp_out: LinearConfig::new(self.d_ff, self.d_model).init(device),
                    activation: Gelu::new(),
                })
                .collect(),
            norm: LayerNormConfig::new(self.d_model).with_epsilon(NORM_EPSILON).init(device),
            head: LinearConfig::new(self.d_model, self.vocab_size).init(device),
            vocab_size: self.vocab_size,
            max_seq_len: self.max_seq_len,
        })
    }
}

/// The epsilon of every layer norm (burn's default, written out because the fused kernel needs it
/// and `LayerNorm` keeps its own private).
const NORM_EPSILON: f64 = 1e-5;

/// `norm` applied to `x`: one fused kernel forward and one backward on a cubecl device
/// (`tabswarm_kernels::fused::layer_norm`), burn's own layer norm elsewhere — the same values.
fn normalize(norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    match &norm.beta {
        Some(beta) => fused::layer_norm(x, norm.gamma.val(), beta.val(), NORM_EPSILON),
        None => norm.forward(x),
    }
}

/// The decoder-only transformer policy.
#[derive(Module, Debug)]
pub struct Model {
    token_embedding: Embedding,
    position_embedding: Embedding,
    blocks: Vec<Block>,
    norm: LayerNorm,
    pub(crate) head: Linear,
    vocab_size: usize,
    max_seq_len: usize,
}

#[derive(Module, Debug)]
struct Block {
    attn_norm: LayerNorm,
    attention: Attention,
    mlp_norm: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
    activation: Gelu,
}

#[derive(Module, Debug)]
struct Attention {
    qkv: Linear,
    out: Linear,
    n_heads: usize,
}

/// Keys and values of every position generated so far, per layer.
///
/// Each layer's keys and values live in one tensor of `[batch, heads, capacity, head_dim]` (capacity:
/// the model's context, or less with [`KvCache::with_capacity`]), allocated on first use and written
/// in place (`slice_assign` on a tensor nothing else holds), so appending a position copies that
/// position only — not the whole cache, as `Tensor::cat` did — and attention reads just the filled
/// prefix.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    len: usize,
    /// Positions to allocate room for; `None`: the model's whole context.
    capacity: Option<usize>,
    /// Left padding of each sequence (see [`KvCache::with_padding`]); empty: none.
    pads: Vec<usize>,
}

/// One layer's keys and values, `[batch, heads, capacity, head_dim]`.
#[derive(Debug)]
struct LayerCache {
    keys: Tensor<4>,
    values: Tensor<4>,
}

/// Where a layer appends this step's keys and values.
struct CacheSlot<'a> {
    layer: &'a mut Option<LayerCache>,
    /// Positions already filled.
    start: usize,
    /// Positions the cache has room for in all.
    capacity: usize,
}

impl KvCache {
    /// A cache with room for `positions` (prompt plus new tokens), so a short generation does not
    /// allocate the model's whole context per layer. The model's context still bounds it.
    pub fn with_capacity(positions: usize) -> Self {
        Self { capacity: Some(positions), ..Self::default() }
    }

    /// A cache for a batch of sequences of different lengths, left-padded to one length:
    /// sequence `r` starts with `pads[r]` positions of padding (any token ids). Each sequence gets
    /// its own positions (its first real token is position 0) and attends to none of its padding,
    /// so its logits are those it would get alone. `positions` counts the padding.
    ///
    /// The context bounds the longest sequence without its padding. A sequence that runs past the
    /// context while a shorter one goes on computes meaningless logits there (its positions are
    /// held at the last one); the caller drops them, as [`generate()`](crate::generate::generate) does.
    pub fn with_padding(positions: usize, pads: Vec<usize>) -> Self {
        Self { capacity: Some(positions), pads, ..Self::default() }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Model {
    /// Token ids the model predicts over.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Longest sequence this model accepts.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Logits for every position: `[batch, seq]` token ids → `[batch, seq, vocab]`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Result<Tensor<3>, ModelError> {
        self.run(tokens, None)
    }

    /// Logits for `tokens` continuing the sequence held in `cache` (empty for a prompt), and the
    /// cache extended by them. Only the new positions are computed: the cost of a step does not
    /// depend on how long the prefix is, apart from attending to it.
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Result<Tensor<3>, ModelError> {
        self.run(tokens, Some(cache))
    }

    fn run(&self, tokens: Tensor<2, Int>, mut cache: Option<&mut KvCache>) -> Result<Tensor<3>, ModelError> {
        let [batch, seq] = tokens.dims();
        let start = cache.as_ref().map_or(0, |c| c.len);
        let pads: Vec<usize> = cache.as_ref().map(|c| c.pads.clone()).unwrap_or_default();
        if seq == 0 {
            return Err(ModelError::EmptySequence);
        }
        if !pads.is_empty() && pads.len() != batch {
            return Err(ModelError::InvalidBatch(format!(
                "the KV cache pads {} sequences, but {batch} were given",
                pads.len()
            )));
        }
        // The shortest sequence (the most padding) is the one that gets furthest.
        let most_pad = pads.iter().copied().max().unwrap_or(0);
        if start + seq > self.max_seq_len + most_pad {
            return Err(ModelError::TooLong { len: start + seq - most_pad, max: self.max_seq_len });
        }
        let capacity =
            cache.as_ref().and_then(|c| c.capacity).unwrap_or(self.max_seq_len).min(self.max_seq_len + most_pad);
        if let Some(cache) = cache.as_deref() {
            if start + seq > capacity {
                return Err(ModelError::CacheFull { len: start + seq, capacity });
            }
            // The sequences the cache holds: the batch its layers were allocated for.
            if let Some(held) = cache.layers.iter().flatten().next().map(|layer| layer.keys.dims()[0])
                && held != batch
            {
                return Err(ModelError::InvalidBatch(format!(
                    "the KV cache holds {held} sequences, but {batch} were given to continue them"
                )));
            }
        }
        let device = tokens.device();
        let positions = if most_pad == 0 {
            Tensor::<1, Int>::arange(start as i64..(start + seq) as i64, &device).reshape([1, seq])
        } else {
            // Each sequence counts from its first real token; padding and any position past the
            // context (a longer sequence run on for a shorter one) are held in range.
            let last = self.max_seq_len - 1;
            let ids: Vec<i64> = pads
                .iter()
                .flat_map(|&pad| (start..start + seq).map(move |p| p.saturating_sub(pad).min(last) as i64))
                .collect();
            tabswarm_kernels::work::note_upload();
            Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq]), &device)
        };
        let mut x = self.token_embedding.forward(tokens) + self.position_embedding.forward(positions);
        // One new position sees everything before it (from its sequence's first real token): no
        // mask to build (or upload) for a decode step.
        let pads = if most_pad == 0 { Vec::new() } else { pads };
        let mask = (seq > 1).then(|| causal_mask(seq, start, &pads, &device));
        if let Some(cache) = cache.as_deref_mut() {
            cache.layers.resize_with(self.blocks.len(), || None);
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| CacheSlot { layer: &mut c.layers[i], start, capacity });
            let h = block.attention.forward(normalize(&block.attn_norm, x.clone()), mask.clone(), layer_cache, &pads);
            x = x + h;
            let h = block
                .mlp_out
                .forward(block.activation.forward(block.mlp_in.forward(normalize(&block.mlp_norm, x.clone()))));
            x = x + h;
        }
        if let Some(cache) = cache {
            cache.len = start + seq;
        }
        Ok(self.head.forward(normalize(&self.norm, x)))
    }
}

impl Attention {
    /// `x`: `[batch, seq, d_model]`; `mask`: additive, `[1 or batch, 1, seq, prefix + seq]`,
    /// present whenever `seq > 1`; `pads`: each sequence's left padding, or empty.
    fn forward(
        &self,
        x: Tensor<3>,
        mask: Option<Tensor<4>>,
        cache: Option<CacheSlot<'_>>,
        pads: &[usize],
    ) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let head_dim = d_model / self.n_heads;
        let qkv = self.qkv.forward(x); // [batch, seq, 3 * d_model]
        let heads = |part: usize| {
            qkv.clone()
                .slice([0..batch, 0..seq, part * d_model..(part + 1) * d_model])
                .reshape([batch, seq, self.n_heads, head_dim])
                .swap_dims(1, 2) // [batch, heads, seq, head_dim]
        };
        let (q, k, v) = (heads(0), heads(1), heads(2));
        // Keys and values to attend over, and how many of their positions are filled.
        let (k, v, len) = match cache {
            None => (k, v, seq),
            Some(CacheSlot { layer, start, capacity }) => {
                let LayerCache { keys, values } = layer.take().unwrap_or_else(|| {
                    let zeros = || Tensor::<4>::zeros([batch, self.n_heads, capacity, head_dim], &k.device());
                    LayerCache { keys: zeros(), values: zeros() }
                });
                let end = start + seq;
                let range = [0..batch, 0..self.n_heads, start..end, 0..head_dim];
                let (keys, values) = (keys.slice_assign(range.clone(), k), values.slice_assign(range, v));
                *layer = Some(LayerCache { keys: keys.clone(), values: values.clone() });
                (keys, values, end)
            }
        };
        let context = match mask {
            // One new token sees every filled position (its mask row would be all zeros): the
            // fused kernel on WebGPU/wgpu, the same composition on the CPU.
            None => fused::decode_attention_padded(q, k, v, len, pads),
            Some(mask) => {
                let (k, v) = if len == k.dims()[2] { (k, v) } else { (k.narrow(2, 0, len), v.narrow(2, 0, len)) };
                let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((head_dim as f32).sqrt()) + mask;
                activation::softmax(scores, 3).matmul(v) // [batch, heads, seq, head_dim]
            }
        };
        let context = context.swap_dims(1, 2).reshape([batch, seq, d_model]);
        self.out.forward(context)
    }
}

/// Additive mask letting query `i` (absolute position `start + i`) see keys `0..=start + i`, and
/// with `pads` (one per sequence) none of its sequence's padding `0..pads[r]`. A padding query
/// sees nothing real: its row is all −1e9 (a uniform softmax, finite, never read).
fn causal_mask(seq: usize, start: usize, pads: &[usize], device: &Device) -> Tensor<4> {
    let total = start + seq;
    let row = |pad: usize| {
        (0..seq).flat_map(move |i| (0..total).map(move |j| if j <= start + i && j >= pad { 0.0 } else { -1e9 }))
    };
    tabswarm_kernels::work::note_upload();
    if pads.is_empty() {
        Tensor::from_data(TensorData::new(row(0).collect(), [1, 1, seq, total]), device)
    } else {
        let values: Vec<f32> = pads.iter().flat_map(|&pad| row(pad)).collect();
        Tensor::from_data(TensorData::new(values, [pads.len(), 1, seq, total]), device)
    }
}
