"""One CycleGAN training iteration, in the paper's order. Read this file to know what is trained."""

from __future__ import annotations

from torch import Tensor, nn

from cgfw.model import CycleGAN


def _requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def cyclegan_step(m: CycleGAN, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
    """Translate both ways, update both generators, then both discriminators on pooled fakes.

    Returns each weighted loss term, detached (call .item() only when logging: it syncs a GPU).
    """
    w = m.weights
    m.begin_iteration()

    with m.autocast():
        # 1. Translate A -> B -> A and B -> A -> B (a reconstruction only where a cycle uses it).
        fake_b = m.g_ab(real_a)
        fake_a = m.g_ba(real_b)

        # 2. Generator losses, with the discriminators frozen (they only pass gradients through).
        _requires_grad([m.d_a, m.d_b], False)
        terms: dict[str, Tensor] = {}
        if w.gan:
            terms["g_ab_gan"] = w.gan * m.gan_loss(m.d_b(fake_b), True, False)
            terms["g_ba_gan"] = w.gan * m.gan_loss(m.d_a(fake_a), True, False)
        if w.cycle_forward:
            rec_a = m.g_ba(fake_b)
            terms["cycle_a"] = w.cycle * m.cycle_loss(rec_a, real_a)
        if w.cycle_backward:
            rec_b = m.g_ab(fake_a)
            terms["cycle_b"] = w.cycle * m.cycle_loss(rec_b, real_b)
        if w.identity:
            # A generator fed an image of its target domain should leave it alone.
            terms["idt_b"] = w.identity * m.identity_loss(m.g_ab(real_b), real_b)
            terms["idt_a"] = w.identity * m.identity_loss(m.g_ba(real_a), real_a)
        if w.paired:
            # Only with aligned pairs (real_b is real_a's counterpart): the supervised upper bound.
            terms["paired_b"] = w.paired * m.paired_loss(fake_b, real_b)
            terms["paired_a"] = w.paired * m.paired_loss(fake_a, real_a)
    loss_g = sum(terms.values())
    assert isinstance(loss_g, Tensor)
    m.opt_g.zero_grad(set_to_none=True)
    m.optimizer_step(loss_g, m.opt_g)  # both generators jointly
    _requires_grad([m.d_a, m.d_b], True)

    # 3. Discriminators on real images and fakes drawn from the history pools (kept in fp32);
    #    0.5 halves D's learning rate relative to G, as in the paper.
    if w.gan:
        pooled_b = m.pool_b.query(fake_b.detach().float())
        pooled_a = m.pool_a.query(fake_a.detach().float())
        with m.autocast():
            terms["d_b"] = 0.5 * (
                m.gan_loss(m.d_b(real_b), True, True) + m.gan_loss(m.d_b(pooled_b), False, True)
            )
            terms["d_a"] = 0.5 * (
                m.gan_loss(m.d_a(real_a), True, True) + m.gan_loss(m.d_a(pooled_a), False, True)
            )
        m.opt_d.zero_grad(set_to_none=True)
        m.optimizer_step(terms["d_a"] + terms["d_b"], m.opt_d)
    m.scaler.update()

    terms["g_total"] = loss_g
    return {name: t.detach() for name, t in terms.items()}
