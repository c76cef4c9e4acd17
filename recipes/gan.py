"""A tiny GAN with manual optimization: two optimizers, stepped by hand in `training_step`.

    python recipes/gan.py
    launch recipes/gan.py --max-epochs 5
    launch recipes/gan.py --accelerator cpu --devices 2

Lightning's basic GAN from its "manual optimization" page, shrunk: a generator learns to
produce points like the "real" ones (a 2-D Gaussian blob) against a discriminator.
`automatic_optimization = False` hands the gradients to `training_step`: `self.optimizers()`,
`self.manual_backward(loss)`, `opt.step()` (each step is one global step, so `global_step`
advances by 2 per batch), and `self.lr_schedulers()` stepped by hand at the epoch end.
"""

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from launcher import Module, Trainer

TRAINER = dict(max_epochs=3, log_every_n_steps=5)


def mlp(n_in: int, hidden: int, n_out: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, hidden), torch.nn.LeakyReLU(0.2), torch.nn.Linear(hidden, n_out)
    )


class GAN(Module):
    def __init__(
        self,
        latent_dim: int = 8,
        hidden: int = 32,
        lr: float = 2e-3,
        batch_size: int = 32,
        n_samples: int = 1024,
        lr_decay: float = 0.9,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = mlp(latent_dim, hidden, 2)
        self.discriminator = mlp(2, hidden, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def training_step(self, batch, batch_idx):
        (real,) = batch
        g_opt, d_opt = self.optimizers()
        n = real.shape[0]
        fake = self(torch.randn(n, self.hparams.latent_dim, device=self.device))
        ones = torch.ones(n, 1, device=self.device)
        zeros = torch.zeros(n, 1, device=self.device)

        # Discriminator: real points -> 1, generated ones -> 0 (the generator is frozen).
        with self.toggled_optimizer(d_opt):
            d_loss = F.binary_cross_entropy_with_logits(self.discriminator(real), ones)
            d_loss = d_loss + F.binary_cross_entropy_with_logits(
                self.discriminator(fake.detach()), zeros
            )
            d_opt.zero_grad()
            self.manual_backward(d_loss)
            d_opt.step()

        # Generator: make the discriminator call generated points real.
        with self.toggled_optimizer(g_opt):
            g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake), ones)
            g_opt.zero_grad()
            self.manual_backward(g_loss)
            g_opt.step()

        self.log_dict({"g_loss": g_loss, "d_loss": d_loss}, prog_bar=True)
        self.log("fake_mean_x", fake[:, 0].mean(), on_step=False, on_epoch=True)

    def on_train_epoch_end(self):
        for scheduler in self.lr_schedulers():
            scheduler.step()  # nothing steps schedulers under manual optimization but us

    def configure_optimizers(self):
        lr, betas = self.hparams.lr, (0.5, 0.999)
        g_opt = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas)
        d_opt = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas)
        decay = self.hparams.lr_decay
        schedulers = [torch.optim.lr_scheduler.ExponentialLR(o, decay) for o in (g_opt, d_opt)]
        return [g_opt, d_opt], schedulers

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        real = torch.randn(self.hparams.n_samples, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])
        return DataLoader(TensorDataset(real), batch_size=self.hparams.batch_size, shuffle=True)


if __name__ == "__main__":
    Trainer(**TRAINER).fit(GAN())
