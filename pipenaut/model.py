"""A small numpy MLP, cut into pipeline stages, with hand-written forward and backward kernels.

Every layer's backward sits right next to its forward and is split in two, the way zero-bubble
schedules need it:

* ``backward_input``  (kind ``I``): the gradient for the layer's input, which the previous
  stage is waiting for;
* ``backward_weight`` (kind ``W``): the gradient for the layer's own parameters, which nobody
  waits for.

A full backward (``B``) is ``I`` then ``W``. Gradients *accumulate* across microbatches; each
microbatch's loss is weighted by its share of the batch, so one pipeline step computes exactly
the full-batch gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the MLP and its synthetic task. ``layers`` hidden layers of width ``dim``, then a
    head onto ``classes`` logits and a softmax cross-entropy loss."""

    dim: int = 256
    layers: int = 8
    batch_size: int = 256
    classes: int = 10
    seed: int = 0
    learning_rate: float = 2e-3
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("dim", "layers", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.classes, int) or self.classes < 2:
            raise ValueError(f"classes must be an integer >= 2, got {self.classes!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not 0 < self.learning_rate < float("inf"):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

    def estimated_bytes(self) -> int:
        """A generous upper bound of the memory a run needs: parameters with their gradients and
        two Adam moments, and every layer's stashed input and mask for the whole batch (GPipe holds
        them all at once), plus the batch itself."""
        itemsize = np.dtype(self.dtype).itemsize
        parameters = self.layers * (self.dim * self.dim + self.dim) + (self.dim + 1) * self.classes
        activations = self.batch_size * self.dim * (self.layers * (itemsize + 1) + 4 * itemsize)
        return 4 * parameters * itemsize + activations


SIGNAL = 0.25  # class signal against unit noise: learnable, not instantly


class Linear:
    """``y = x @ weight + bias``."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray):
        self.weight, self.bias = weight, bias
        self.grad_weight, self.grad_bias = np.zeros_like(weight), np.zeros_like(bias)

    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x @ self.weight + self.bias, x  # the input is what the weight gradient needs

    def backward_input(self, saved: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
        return grad_out @ self.weight.T

    def backward_weight(self, saved: np.ndarray, grad_out: np.ndarray) -> None:
        self.grad_weight += saved.T @ grad_out
        self.grad_bias += grad_out.sum(axis=0)


class ReLU:
    """``y = max(x, 0)``; no parameters, so its weight gradient is empty."""

    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return []

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = x > 0
        return x * mask, mask

    def backward_input(self, saved: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
        return grad_out * saved

    def backward_weight(self, saved: np.ndarray, grad_out: np.ndarray) -> None:
        pass


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, weight: float):
    """Mean cross-entropy of a microbatch, and the gradient of ``weight * loss`` for its logits.

    ``weight`` is the microbatch's share of the whole batch, so the weighted microbatch losses
    add up to the full-batch mean loss, and their gradients to its gradient.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(labels))
    loss = float(-log_probs[rows, labels].mean())
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1.0
    grad *= weight / len(labels)
    return loss, grad


class Stage:
    """A contiguous slice of the model. The last stage also holds the head and the loss.

    The stage keeps each microbatch's saved tensors (its *stash*) from the forward until the weight
    gradient has been taken; ``len(stage.stash)`` is the number of activations it holds.
    """

    def __init__(self, index: int, layers: list, is_last: bool):
        self.index, self.layers, self.is_last = index, layers, is_last
        self.stash: dict[int, list] = {}  # microbatch -> per-layer saved tensors
        self.pending_weight: dict[int, list] = {}  # microbatch -> per-layer output gradients
        self.losses: dict[int, float] = {}

    def params(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [p for layer in self.layers for p in layer.params()]

    def forward(self, microbatch: int, x: np.ndarray, labels=None, weight: float = 1.0):
        """Run the layers; on the last stage also the loss. Returns the activation to send on."""
        saved = []
        for layer in self.layers:
            x, s = layer.forward(x)
            saved.append(s)
        if self.is_last:
            loss, x = softmax_cross_entropy(x, labels, weight)
            self.losses[microbatch] = loss  # x is now d(loss)/d(logits), the backward's start
        self.stash[microbatch] = saved + [x] if self.is_last else saved
        return None if self.is_last else x

    def backward_input(self, microbatch: int, grad: np.ndarray | None, need_input_grad: bool = True):
        """Kind I: propagate the gradient through the stage; keep what W needs."""
        saved = self.stash[microbatch]
        if self.is_last:
            saved, grad = saved[:-1], saved[-1]
        grads_out = [None] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            grads_out[i] = grad
            if i > 0 or need_input_grad:
                grad = self.layers[i].backward_input(saved[i], grad)
        self.pending_weight[microbatch] = grads_out
        return grad if need_input_grad else None

    def backward_weight(self, microbatch: int) -> None:
        """Kind W: accumulate this microbatch's parameter gradients and free its stash."""
        try:
            grads_out = self.pending_weight.pop(microbatch)
        except KeyError:
            raise RuntimeError(
                f"weight gradient of stage {self.index} microbatch {microbatch} requested before "
                "its input gradient"
            ) from None
        saved = self.stash.pop(microbatch)
        for layer, s, g in zip(self.layers, saved, grads_out):
            layer.backward_weight(s, g)


def layer_split(layers: int, stages: int) -> list[int]:
    """How many hidden layers each stage gets: as even as possible, the first stages take the
    remainder (10 layers on 4 stages -> [3, 3, 2, 2])."""
    base, extra = divmod(layers, stages)
    return [base + (1 if s < extra else 0) for s in range(stages)]


def build_stages(config: ModelConfig, stages: int) -> list[Stage]:
    """Initialise the model from ``config.seed`` and cut it into ``stages`` stages.

    All weights come from one random stream in layer order, so the same seed gives the same model
    however it is cut: a pipelined run and the sequential reference start from identical weights.
    """
    if config.layers < stages:
        raise ValueError(f"{config.layers} layers cannot fill {stages} stages; use at least {stages} layers")
    rng = np.random.default_rng(config.seed)
    dtype = np.dtype(config.dtype)

    def linear(fan_in: int, fan_out: int, gain: float) -> Linear:
        weight = rng.standard_normal((fan_in, fan_out)) * np.sqrt(gain / fan_in)
        return Linear(weight.astype(dtype), np.zeros(fan_out, dtype=dtype))

    hidden = [[linear(config.dim, config.dim, 2.0), ReLU()] for _ in range(config.layers)]
    head = linear(config.dim, config.classes, 1.0)
    result, start = [], 0
    for s, count in enumerate(layer_split(config.layers, stages)):
        layers = [layer for pair in hidden[start : start + count] for layer in pair]
        start += count
        is_last = s == stages - 1
        result.append(Stage(s, layers + ([head] if is_last else []), is_last))
    return result


def make_dataset(config: ModelConfig, step: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The batch of one training step of a synthetic classification task: each class is a fixed
    random direction (from the seed), each sample a faint copy of its class's direction under
    fresh noise. New samples every step, so the MLP learns the classes rather than memorising a
    batch, and the loss falls steadily."""
    centers = np.random.default_rng([config.seed, 0]).standard_normal((config.classes, config.dim))
    rng = np.random.default_rng([config.seed, 1, step])
    labels = rng.integers(0, config.classes, config.batch_size)
    inputs = SIGNAL * centers[labels] + rng.standard_normal((config.batch_size, config.dim))
    return inputs.astype(config.dtype), labels


def split_microbatches(batch_size: int, microbatches: int) -> list[slice]:
    """Contiguous microbatches whose sizes differ by at most one."""
    if microbatches > batch_size:
        raise ValueError(f"a batch of {batch_size} cannot be cut into {microbatches} microbatches")
    base, extra = divmod(batch_size, microbatches)
    bounds, start = [], 0
    for i in range(microbatches):
        size = base + (1 if i < extra else 0)
        bounds.append(slice(start, start + size))
        start += size
    return bounds


class Adam:
    """Adam over one stage's parameters; the step is taken after each pipeline flush."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.moments = [(np.zeros_like(p), np.zeros_like(p)) for p, _ in params]
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        b1, b2 = self.betas
        correction1, correction2 = 1 - b1**self.steps, 1 - b2**self.steps
        for (param, grad), (m, v) in zip(self.params, self.moments):
            m *= b1
            m += (1 - b1) * grad
            v *= b2
            v += (1 - b2) * grad * grad
            param -= self.lr * (m / correction1) / (np.sqrt(v / correction2) + self.eps)
            grad.fill(0)
