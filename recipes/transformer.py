"""A small GPT-style language model on synthetic tokens: the transformer of the GPU check.

    python recipes/transformer.py                                   # plain Lightning-style run
    launch recipes/transformer.py --gpus 1                          # bf16-mixed on one GPU
    launch recipes/transformer.py --gpus 8 --precision fp8 --max-steps 500
    launch recipes/transformer.py --accelerator cpu --max-steps 3 --set n_layers=2 --set d_model=64 --set n_heads=4

A decoder-only transformer (pre-LayerNorm blocks, causal `scaled_dot_product_attention`,
GELU MLP, tied embeddings; 6 layers x 384 wide = 11M parameters by default) trained with
AdamW and a linear-warmup cosine schedule per step. The data is synthetic and needs no
download: token sequences drawn from a fixed random Markov chain over `vocab_size` tokens, so
the loss has something to learn (it falls from ln(vocab_size) towards the chain's entropy,
`data_entropy` in the logged params) and every process builds the same data from the seed.
All hidden sizes are multiples of 16, so `--precision fp8` (torchao) converts every Linear.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer
from launcher.errors import UserError

TRAINER = dict(max_epochs=5, precision="bf16-mixed", gradient_clip_val=1.0)


def markov_tokens(
    num_sequences: int, seq_len: int, vocab_size: int, branching: int, seed: int
) -> tuple[torch.Tensor, float]:
    """`(num_sequences, seq_len + 1)` tokens of a random Markov chain, and its entropy (nats).

    Each token has `branching` possible successors with random probabilities: a language
    with structure, learnable in a few hundred steps.
    """
    gen = torch.Generator().manual_seed(seed)
    successors = torch.stack([torch.randperm(vocab_size, generator=gen)[:branching]
                              for _ in range(vocab_size)])  # fmt: skip
    probs = torch.rand(vocab_size, branching, generator=gen).add_(0.1)
    probs /= probs.sum(dim=1, keepdim=True)
    entropy = float(-(probs * probs.log()).sum(dim=1).mean())
    tokens = torch.empty(num_sequences, seq_len + 1, dtype=torch.long)
    tokens[:, 0] = torch.randint(0, vocab_size, (num_sequences,), generator=gen)
    for t in range(seq_len):
        choice = torch.multinomial(probs[tokens[:, t]], 1, generator=gen).squeeze(1)
        tokens[:, t + 1] = successors[tokens[:, t], choice]
    return tokens, entropy


class Block(nn.Module):
    """Pre-LN transformer block: causal self-attention, then a 4x GELU MLP."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model),
            nn.GELU(),
            nn.Linear(4 * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(width, dim=2)
        q, k, v = (t.view(batch, seq, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        attn = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, seq, width))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token + position embeddings, `n_layers` blocks, a tied output head."""

    def __init__(self, vocab_size: int, seq_len: int, d_model: int, n_layers: int,
                 n_heads: int, dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        if d_model % n_heads:
            raise UserError(
                f"d_model={d_model} must be divisible by n_heads={n_heads}; "
                f"change one, e.g. --set n_heads={_a_divisor(d_model, n_heads)}"
            )
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.head.weight = self.tok.weight  # weight tying, as in GPT-2
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class TransformerLM(Module):
    """Next-token prediction on Markov-chain tokens; logs `train_loss`, `val_loss`, `val_ppl`."""

    def __init__(
        self,
        vocab_size: int = 512,
        seq_len: int = 256,
        d_model: int = 384,
        n_layers: int = 6,
        n_heads: int = 6,
        dropout: float = 0.0,
        lr: float = 6e-4,
        weight_decay: float = 0.1,
        warmup_steps: int = 100,
        batch_size: int = 32,
        num_sequences: int = 8192,
        branching: int = 4,
        data_seed: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPT(vocab_size, seq_len, d_model, n_layers, n_heads, dropout)
        self._data: tuple[TensorDataset, TensorDataset] | None = None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)

    def _loss(self, batch) -> torch.Tensor:
        (tokens,) = batch
        logits = self(tokens[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        self.log("val_ppl", torch.exp(loss), sync_dist=True)

    # -- data: built once, the same in every process ----------------------------------------
    def _datasets(self) -> tuple[TensorDataset, TensorDataset]:
        if self._data is None:
            hp = self.hparams
            tokens, entropy = markov_tokens(hp.num_sequences, hp.seq_len, hp.vocab_size,
                                            hp.branching, hp.data_seed)  # fmt: skip
            self.hparams.data_entropy = round(entropy, 4)  # the loss floor, for reference
            n_val = max(hp.batch_size, hp.num_sequences // 16)
            self._data = TensorDataset(tokens[n_val:]), TensorDataset(tokens[:n_val])
        return self._data

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self._datasets()[0], batch_size=self.hparams.batch_size,
                          shuffle=True, drop_last=True, pin_memory=self.device.type == "cuda")  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._datasets()[1], batch_size=self.hparams.batch_size,
                          pin_memory=self.device.type == "cuda")  # fmt: skip

    # -- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        # The usual GPT split: no weight decay on biases, LayerNorms and embeddings.
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "tok" not in n
                 and "pos" not in n]  # fmt: skip
        decay_ids = {id(p) for p in decay}
        no_decay = [p for p in self.parameters() if id(p) not in decay_ids]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.lr, betas=(0.9, 0.95), fused=self.device.type == "cuda",
        )  # fmt: skip
        total = self._total_steps()
        warmup = max(1, min(hp.warmup_steps, total // 10 or 1))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}  # fmt: skip

    def _total_steps(self) -> int:
        trainer = self.trainer
        if trainer.max_steps and trainer.max_steps > 0:
            return trainer.max_steps
        per_epoch = trainer.num_training_batches
        per_epoch = int(per_epoch) if math.isfinite(per_epoch) else 1000
        epochs = trainer.max_epochs or 1
        return max(1, per_epoch * epochs // trainer.accumulate_grad_batches)


if __name__ == "__main__":
    Trainer(**TRAINER).fit(TransformerLM())


def _a_divisor(d_model: int, near: int) -> int:
    """The divisor of `d_model` closest to `near` (for the error message)."""
    return min((d for d in range(1, d_model + 1) if d_model % d == 0), key=lambda d: abs(d - near))
