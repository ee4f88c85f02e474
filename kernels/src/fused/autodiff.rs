//! The backward pass of the fused token log-prob for burn's autodiff backend: the forward keeps
//! the logits, targets and per-row log-sum-exp; the backward launches the fused gradient kernel.
//! Sampling and the internal helpers are not differentiated: they run on the inner backend.

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

    fn decode_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        len: usize,
        scale: f32,
    ) -> FloatTensor<Self> {
        // Generation runs without autodiff; on an autodiff device the result is a constant.
        FloatTensor::<Self>::new(B::decode_attention(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            len,
            scale,
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
