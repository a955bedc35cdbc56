"""LAMB (You et al., 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes"), the
optimizer of ALBERT's and ALBERT-ACT's pre-training, for PyTorch.

For each parameter `w` with gradient `g`, at step `t` (1-based):

    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)       # only with bias_correction=True
    u = m_hat / (sqrt(v_hat) + eps) + weight_decay * w
    r = ||w|| / ||u||   if adapt and both norms > 0, else 1      # the layer-wise trust ratio
    w = w - lr * r * u

ALBERT's TensorFlow LAMB has no bias correction and excludes biases and LayerNorm weights from both weight decay
and the trust ratio; here each param group says so with `weight_decay` and `adapt` (default True).
"""

from __future__ import annotations

import torch


class Lamb(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, bias_correction: bool = True, adapt: bool = True):
        if not lr >= 0.0:
            raise ValueError(f"LAMB: learning rate must be >= 0, got {lr}")
        if not eps >= 0.0:
            raise ValueError(f"LAMB: eps must be >= 0, got {eps}")
        for index, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"LAMB: betas[{index}] must lie in [0, 1), got {beta}")
        if not weight_decay >= 0.0:
            raise ValueError(f"LAMB: weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        bias_correction=bias_correction, adapt=adapt)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if grad.is_sparse:
                    raise RuntimeError("LAMB does not support sparse gradients")
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                if group["bias_correction"]:
                    m_hat = exp_avg / (1.0 - beta1 ** state["step"])
                    v_hat = exp_avg_sq / (1.0 - beta2 ** state["step"])
                else:
                    m_hat, v_hat = exp_avg, exp_avg_sq
                update = m_hat / (v_hat.sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update.add(param, alpha=group["weight_decay"])
                ratio = 1.0
                if group["adapt"]:
                    weight_norm = torch.linalg.vector_norm(param)
                    update_norm = torch.linalg.vector_norm(update)
                    ratio = torch.where((weight_norm > 0) & (update_norm > 0), weight_norm / update_norm,
                                        torch.ones_like(weight_norm))
                param.sub_(update * (group["lr"] * ratio))
        return loss
