//! The backward passes of the fused kernels for burn's autodiff backend. The token log-prob keeps
//! the logits, targets and per-row log-sum-exp; the layer norm keeps its input, its scale and each
//! row's mean and reciprocal deviation; each backward is one fused kernel. Sampling, decode
//! attention, the optimiser step and the internal helpers are not differentiated: they run on the
//! inner backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::{FloatTensor, IntTensor};

use super::FusedBackend;

#[derive(Debug)]
struct TokenLogprobBackward;

impl<B: FusedBackend> Backward<B, 1> for TokenLogprobBackward {
    /// Logits, targets and the forward pass's log-sum-exp.
    type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (logits, targets, lse) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| B::token_logprob_backward(logits, targets, lse, grad));
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<B: FusedBackend> Backward<B, 3> for LayerNormBackward {
    /// The input, the scale and the forward pass's per-row `(mean, 1 / deviation)`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, stats) = ops.state;
        // One kernel writes all three; a gradient nobody asked for is dropped.
        let (dx, dgamma, dbeta) = B::layer_norm_backward(x, gamma, stats, grad);
        for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FusedBackend, C: CheckpointStrategy> FusedBackend for Autodiff<B, C> {
    fn token_logprob(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let (logits, node) = logits.into_parts();
        match TokenLogprobBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (out, lse) = B::token_logprob_with_lse(logits.clone(), targets.clone());
                prep.finish((logits, targets, lse), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::token_logprob(logits, targets)),
        }
    }

    fn token_logprob_with_lse(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (out, lse) = B::token_logprob_with_lse(logits.into_primitive(), targets);
        (FloatTensor::<Self>::new(out), FloatTensor::<Self>::new(lse))
    }

    fn token_logprob_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::token_logprob_backward(
            logits.into_primitive(),
            targets,
            lse.into_primitive(),
            grad.into_primitive(),
        ))
    }

    fn layer_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        let (x, node_x) = x.into_parts();
        let (gamma, node_gamma) = gamma.into_parts();
        let (beta, node_beta) = beta.into_parts();
        match LayerNormBackward.prepare::<C>([node_x, node_gamma, node_beta]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, stats) = B::layer_norm_with_stats(x.clone(), gamma.clone(), beta, epsilon);
                prep.finish((x, gamma, stats), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_fused(x, gamma, beta, epsilon)),
        }
    }

    fn layer_norm_with_stats(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (y, stats) =
            B::layer_norm_with_stats(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon);
        (FloatTensor::<Self>::new(y), FloatTensor::<Self>::new(stats))
    }

    fn layer_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dgamma, dbeta) = B::layer_norm_backward(
            x.into_primitive(),
            gamma.into_primitive(),
            stats.into_primitive(),
            grad.into_primitive(),
        );
        (FloatTensor::<Self>::new(dx), FloatTensor::<Self>::new(dgamma), FloatTensor::<Self>::new(dbeta))
    }

    fn decode_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        len: usize,
        scale: f32,
        first: Vec<u32>,
    ) -> FloatTensor<Self> {
        // Generation runs without autodiff; on an autodiff device the result is a constant.
        FloatTensor::<Self>::new(B::decode_attention(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            len,
            scale,
            first,
        ))
    }

    fn sample(logits: FloatTensor<Self>, temperature: f32, top_k: u32, seed: u64, step: u32) -> IntTensor<Self> {
        B::sample(logits.into_primitive(), temperature, top_k, seed, step)
    }

    fn adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scalars: [u32; 8],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // An optimiser step is not differentiated: its results are constants.
        let (p, m, v) =
            B::adamw(param.into_primitive(), grad.into_primitive(), m.into_primitive(), v.into_primitive(), scalars);
        (FloatTensor::<Self>::new(p), FloatTensor::<Self>::new(m), FloatTensor::<Self>::new(v))
    }
}
