"""SASRec (Kang & McAuley 2018): causal self-attention over a user's item sequence, trained to
predict the next item at every position.

    h_t = Transformer_causal(E[s_1..s_t] + P[1..t]),   p(s_{t+1} = i | s_1..s_t) = softmax_i(h_t . E_i)

Training sequences are each user's training interactions in time order (`TrainData`: held-out
targets never count), cut to the last `max_len`. The objective is the next-item cross-entropy
over the whole catalog (the full-softmax form of SASRec's next-item loss: it converges in far
fewer epochs than one sampled negative per step, Klenitskiy & Vasilev 2023). Early stopping:
each user's last training item is held back as the validation target (when evaluating on the
test split that is exactly the leave-one-out validation item); NDCG@10 over the full catalog on
up to `val_users` users is checked every epoch, and the best epoch's weights are kept.

Ranking reads the user's WHOLE history before the target (their training sequence, last
`max_len` items), not only the window a prompt shows; `history: shown` uses `case.history`
instead. CPU by default (`device: auto` takes CUDA when torch sees it); seeded; a non-finite
loss stops training with an error and nothing is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from recllm.baselines.base import Baseline, TrainData, require_data
from recllm.baselines.fitcache import cached_fit
from recllm.data.schema import UserCase
from recllm.errors import RecllmError
from recllm.options import StrictOptions

VERSION = "sasrec-2"


class SASRecOptions(StrictOptions):
    max_len: int = Field(200, ge=1, description="most recent items the model reads")
    hidden: int = Field(64, ge=1, description="embedding and attention width")
    blocks: int = Field(2, ge=1, description="self-attention blocks")
    heads: int = Field(1, ge=1, description="attention heads (hidden must divide by it)")
    dropout: float = Field(0.2, ge=0, lt=1)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    batch_size: int = Field(128, ge=1, description="sequences per step")
    negatives: int = Field(0, ge=0, description="0 = softmax over the whole catalog; N = over "
                           "the target and N uniform negatives shared by the batch (cheaper)")
    epochs: int = Field(200, ge=1, description="most passes over the training sequences")
    patience: int = Field(3, ge=1, description="stop after this many epochs without a better "
                          "validation NDCG@10")
    val_users: int = Field(1000, ge=1, description="users scored for early stopping (seeded)")
    history: Literal["all", "shown"] = Field("all", description="rank from the whole history "
                                             "before the target, or the shown window")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    # One CPU thread: reproducible, and on a busy machine far faster than two (torch's threads
    # wait for each other at every op: 20 s vs 0.6 s for the tiny test fit at load 9 on 2 cores).
    threads: int = Field(1, ge=1, description="CPU threads for torch")

    @model_validator(mode="after")
    def _heads_divide(self):
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        return self


def _net(n_items: int, o: SASRecOptions):
    import torch
    from torch import nn

    class SASRec(nn.Module):
        def __init__(self):
            super().__init__()
            self.items = nn.Embedding(n_items + 1, o.hidden, padding_idx=0)   # 0 = padding
            self.pos = nn.Embedding(o.max_len, o.hidden)
            self.drop = nn.Dropout(o.dropout)
            self.layers = nn.ModuleList(nn.TransformerEncoderLayer(
                o.hidden, o.heads, dim_feedforward=o.hidden, dropout=o.dropout,
                batch_first=True, norm_first=True) for _ in range(o.blocks))
            self.norm = nn.LayerNorm(o.hidden)
            self.in_norm = nn.LayerNorm(o.hidden)
            for m in self.modules():               # small init (RecBole's initializer_range)
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

        def forward(self, seq):                       # seq: (B, L) item index + 1, left-padded
            length = seq.shape[1]
            keep = (seq > 0).unsqueeze(-1).float()
            x = self.items(seq) + self.pos.weight[o.max_len - length:]
            x = self.drop(self.in_norm(x)) * keep
            causal = torch.triu(torch.full((length, length), float("-inf"), device=seq.device), 1)
            for layer in self.layers:
                x = layer(x, src_mask=causal) * keep  # padding stays zero (as in SASRec)
            return self.norm(x)

        def logits(self, h):                          # over real items only (index 1..n)
            return h @ self.items.weight[1:].T

    return SASRec()


def _device(name: str) -> str:
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise RecllmError("torch sees no CUDA device", where="baseline_options.sasrec.device",
                          hint="use device: cpu (or auto)")
    return "cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name)


@contextmanager
def _threads(n: int):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pad(seqs: list[np.ndarray], max_len: int) -> np.ndarray:
    """Left-padded (len(seqs), L) array of item index + 1, L = the longest (cut to max_len)."""
    width = max(1, min(max_len, max((len(s) for s in seqs), default=1)))
    out = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        s = s[-width:]
        if len(s):
            out[r, width - len(s):] = s + 1
    return out


class SASRecBaseline(Baseline):
    """Self-attentive sequential recommendation (see module docstring)."""

    name = "sasrec"
    Options = SASRecOptions
    trains = True

    def __init__(self, train: TrainData, seed: int = 0, options: SASRecOptions | None = None):
        super().__init__(train, seed, options)
        require_data(train, self.name, items=2, pairs=2)
        seqs = [train.seq_items[a:b] for a, b in zip(train.seq_ptr[:-1], train.seq_ptr[1:])]
        if not any(len(s) >= 2 for s in seqs):
            raise RecllmError(f"baseline 'sasrec' needs at least 1 user with 2+ training "
                              f"interactions; the training data have 0 of {len(seqs)} users",
                              where="baselines: sasrec", hint="use a dataset with longer histories")
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise RecllmError("the sasrec baseline needs torch",
                              hint="pip install torch (the CPU wheel)") from exc
        self.device = _device(self.options.device)
        with _threads(self.options.threads):
            state = cached_fit(self, VERSION, lambda: self._fit(seqs))
        import torch
        self.net = _net(train.n_items, self.options).to(self.device)
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.net.eval()

    def _fit(self, seqs: list[np.ndarray]):
        import torch

        o, rng = self.options, np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        net = _net(self.train.n_items, o).to(self.device)
        opt = torch.optim.Adam(net.parameters(), lr=o.lr, betas=(0.9, 0.98))
        # the last training item of each user is the early-stopping target
        fit_seqs = [s[:-1][-(o.max_len + 1):] for s in seqs if len(s) >= 3]
        fit_seqs += [s[-(o.max_len + 1):] for s in seqs if len(s) == 2]
        val = [i for i, s in enumerate(seqs) if len(s) >= 3]
        val = sorted(rng.choice(val, size=min(o.val_users, len(val)), replace=False).tolist())
        order = np.argsort([len(s) for s in fit_seqs], kind="stable")   # similar lengths batch together
        batches = [order[i:i + o.batch_size] for i in range(0, len(order), o.batch_size)]
        best, best_state, best_epoch, stale, history = -1.0, None, 0, 0, []
        for epoch in range(1, o.epochs + 1):
            net.train()
            total = 0.0
            for b in rng.permutation(len(batches)):
                x = torch.from_numpy(_pad([fit_seqs[i] for i in batches[b]], o.max_len + 1)).to(self.device)
                inp, lab = x[:, :-1], x[:, 1:]
                h = net(inp)
                real = lab > 0
                loss = self._loss(net, h[real], lab[real] - 1, rng)
                if not torch.isfinite(loss):
                    raise RecllmError(f"SASRec training diverged (loss {loss.item()} at epoch "
                                      f"{epoch}); nothing was cached", where="baseline_options.sasrec",
                                      hint="lower lr, or raise dropout")
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item()
            score = self._validate(net, [seqs[i] for i in val])
            history.append(round(float(score), 5))
            if score > best:
                best, best_epoch, stale = score, epoch, 0
                best_state = {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= o.patience:
                    break
        info = {"device": self.device, "epochs_run": epoch, "best_epoch": best_epoch,
                "valid_ndcg@10": round(float(best), 5), "valid_history": history,
                "train_sequences": len(fit_seqs)}
        return best_state, info

    def _loss(self, net, h, target, rng):
        """Next-item cross-entropy: over every item, or over the target and `negatives`
        uniform items shared by the batch (a sampled negative equal to the target is masked)."""
        import torch
        f = torch.nn.functional
        n = self.options.negatives
        if n == 0 or n >= self.train.n_items:
            return f.cross_entropy(net.logits(h), target)
        neg = torch.from_numpy(rng.integers(0, self.train.n_items, size=n)).to(h.device)
        emb = net.items.weight[1:]
        pos = (h * emb[target]).sum(-1, keepdim=True)
        other = (h @ emb[neg].T).masked_fill(neg[None, :] == target[:, None], float("-inf"))
        logits = torch.cat([pos, other], dim=1)
        return f.cross_entropy(logits, torch.zeros(len(h), dtype=torch.long, device=h.device))

    def _validate(self, net, seqs: list[np.ndarray]) -> float:
        """NDCG@10 over the full catalog of each sequence's last item given the rest."""
        if not seqs:
            return 0.0
        scores = self._forward(net, [s[:-1] for s in seqs])
        ndcg = 0.0
        for row, s in zip(scores, seqs):
            target = row[s[-1]]
            row[s[:-1]] = -np.inf
            rank = int((row > target).sum())
            ndcg += 1.0 / np.log2(rank + 2) if rank < 10 else 0.0
        return ndcg / len(seqs)

    def _forward(self, net, seqs: list[np.ndarray], step: int = 256) -> np.ndarray:
        import torch

        net.eval()
        out = np.zeros((len(seqs), self.train.n_items), dtype=np.float32)
        with torch.no_grad():
            for lo in range(0, len(seqs), step):
                x = torch.from_numpy(_pad(seqs[lo:lo + step], self.options.max_len)).to(self.device)
                out[lo:lo + step] = net.logits(net(x)[:, -1]).float().cpu().numpy()
        return out

    def scores(self, cases: Sequence[UserCase]) -> np.ndarray:
        seqs = []
        for case in cases:
            seq = self.train.sequence(case.user_id) if self.options.history == "all" else None
            seqs.append(seq if seq is not None and len(seq) else self.train.indices(case.history))
        tie = self.train.counts / (self.train.counts.max() + 1.0) * 1e-6
        with _threads(self.options.threads):
            return self._forward(self.net, seqs).astype(np.float64) + tie
