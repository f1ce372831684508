"""The CycleGAN of Zhu et al. 2017 as a cgfw model: two generators, two discriminators, their
losses, the image pools and two optimizers. `CycleGAN.step` is the training iteration; read it
to know what is trained. It computes what the authors' code does (tests/test_parity.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from cgfw import Build, Model, RecipeView, Resolved, check_output
from cgfw.errors import CgfwError
from cgfw_paper.models import DIRECTIONS, SLOTS, CycleGANOptions
from cgfw_paper.nets import compute_as_authors
from cgfw_paper.stacking import Stacking
from cgfw_paper.streams import Streams, draws_random, share_parameters, shared


class Buffer(Protocol):
    def query(self, images: Tensor) -> Tensor: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Weights:
    """Loss weights as the step uses them; identity is absolute here (relative x cycle)."""

    gan: float
    cycle: float
    cycle_forward: bool
    cycle_backward: bool
    identity: float
    paired: float

    @property
    def terms(self) -> list[str]:
        """The loss terms the step computes with these weights, by name."""
        wanted = {
            "g_ab_gan": self.gan,
            "g_ba_gan": self.gan,
            "cycle_a": self.cycle_forward,
            "cycle_b": self.cycle_backward,
            "idt_b": self.identity,
            "idt_a": self.identity,
            "paired_b": self.paired,
            "paired_a": self.paired,
            "d_b": self.gan,
            "d_a": self.gan,
        }
        return [name for name, on in wanted.items() if on]

    @staticmethod
    def of(keys: Mapping[str, Any]) -> Weights:
        gan, cycle = keys["losses.gan"], keys["losses.cycle"]
        return Weights(
            gan=gan.weight,
            cycle=cycle.weight,
            cycle_forward=cycle.forward and cycle.weight > 0,
            cycle_backward=cycle.backward and cycle.weight > 0,
            identity=keys["losses.identity"].weight * cycle.weight,
            paired=keys["losses.paired"].weight,
        )


def _requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def _unsafe(resolved: Resolved | RecipeView, parts: dict[str, Any]) -> str | None:
    """Why a step with these buffer / regularizer / augment parts (classes or objects) cannot be
    captured as one CUDA graph, or None."""
    for slot, part in parts.items():
        if getattr(part, "graph_safe", False):
            continue
        if slot == "buffer":
            kind = part.__name__ if isinstance(part, type) else type(part).__name__
            return (
                f"needs a buffer that declares graph_safe = True ({kind} may make host-side "
                "random choices that a graph would freeze)"
            )
        if slot == "regularizer":
            return (
                f"is not available with regularizer '{resolved.components[slot].name}' (a "
                "second-order gradient, not captured here)"
            )
        name = resolved.components[slot].name
        return f"needs an augment that declares graph_safe = True ('{name}' does not)"
    return None


def _check_pool_sizes(resolved: Resolved | RecipeView, pool: Buffer) -> None:
    """A pool that keeps its fakes in one tensor (`one_size`) cannot take training images of
    different sizes (the authors' scale_width and none modes): said before the first step,
    not as a shape error in it."""
    why = getattr(resolved.options.get("data"), "unequal_sizes", None)
    if isinstance(why, str) and getattr(pool, "one_size", False):
        raise CgfwError(
            f"{resolved.source}: {why}, and buffer '{resolved.components['buffer'].name}' "
            "keeps its fakes in one tensor of one size; set buffer.capacity = 0 (the "
            "discriminators see only the newest fakes) or a data.preprocess that crops"
        )


Terms = dict[str, Tensor]


@dataclass(frozen=True)
class _Stream:
    """One direction of `CycleGAN._step_in_streams`: its generator `g`, the `other` one that
    reconstructs, the discriminator `d` of its fakes, its `real` images and the real images
    of its `target` domain, whether its cycle term is on, and the names in its terms (g_ab's
    stream has g_ab_gan, cycle_a, idt_b, paired_b and d_b)."""

    g: nn.Module
    other: nn.Module
    d: nn.Module
    real: Tensor
    target: Tensor
    cycle: bool
    own: str  # the domain of `real`: "a" or "b"

    @property
    def theirs(self) -> str:
        return "b" if self.own == "a" else "a"

    @property
    def g_name(self) -> str:
        return self.own + self.theirs


class CycleGAN(Model):
    slots = SLOTS
    directions = DIRECTIONS
    default = True  # recipes without a [model] section train the paper's model

    def __init__(self, options: CycleGANOptions, build: Build) -> None:
        super().__init__(options, build)  # sets self.resolved, the read-only recipe
        self.weights = Weights.of(build.resolved.keys)
        if self.weights.paired:  # the trainer checks the dataset gives aligned pairs
            self.needs_pairs = f"losses.paired.weight = {self.weights.paired}"
        if not self.weights.terms:
            raise CgfwError(
                f"{build.resolved.source}: every loss term is off; nothing would be trained"
            )
        self.g_ab = build.network("generator")  # A -> B (the authors' G_A)
        self.g_ba = build.network("generator")  # B -> A (G_B)
        self.d_a = build.network("discriminator")  # real_a vs fake_a (the authors' D_B)
        self.d_b = build.network("discriminator")  # real_b vs fake_b (D_A)
        self.networks = {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}
        # Calls apart (train.stack_calls = false) are the authors' arithmetic: their loop's
        # values, bit for bit; their convs', instance norms' and Adam's too.
        exact = not build.resolved.recipe.train.stack_calls
        if exact:
            for net in self.networks.values():
                compute_as_authors(net)
        self.opt_g = build.optimizer(self.g_ab, self.g_ba, exact=exact)
        self.opt_d = build.optimizer(self.d_a, self.d_b, exact=exact)
        self.optimizers = {"g": self.opt_g, "d": self.opt_d}
        self.gan_loss: Callable[..., Tensor] = build.component("losses.gan")
        # A relativistic loss takes D's real and fake scores together (the hook's pair form).
        self.gan_pair = build.declares("losses.gan", "pair")
        self.cycle_loss: Callable[[Tensor, Tensor], Tensor] = build.component("losses.cycle")
        self.identity_loss: Callable[[Tensor, Tensor], Tensor] = build.component("losses.identity")
        self.paired_loss: Callable[[Tensor, Tensor], Tensor] = build.component("losses.paired")
        self.pool_a: Buffer = build.component("buffer")  # history of fake_a shown to d_a
        self.pool_b: Buffer = build.component("buffer")
        _check_pool_sizes(build.resolved, self.pool_a)
        # A gradient penalty added to each discriminator's loss, and an augmentation of every
        # image a discriminator judges; both None in the paper's setting.
        self.regularizer: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = build.component(
            "regularizer"
        )
        self.augment: Callable[[Tensor], Tensor] | None = build.component("augment")
        # The discriminators run as one network where that is faster: training eagerly on a
        # CPU in NCHW (docs/benchmarks.md; not measured on a GPU).
        speed = build.rt.speed
        cpu_eager = build.rt.device.type == "cpu" and speed.compile == "off"
        pair = (self.d_b, self.d_a) if cpu_eager and not speed.channels_last else None
        self.stacking = Stacking(not exact, self.networks.values(), pair)
        self.streams: Streams | None = None  # the step's two streams, where `setup` finds them

    @classmethod
    def terms(cls, resolved: Resolved) -> list[str]:
        terms = Weights.of(resolved.keys).terms
        if "regularizer" in resolved.components and "d_a" in terms:
            terms += ["reg_b", "reg_a"]
        return terms

    @classmethod
    def reference(cls, resolved: Resolved, device: torch.device) -> Any:
        """The authors' loop (benchmarks/reference_loop.py, a source checkout's) on newly built
        networks of the recipe, with its loss weights and switches, pool size and GAN loss:
        what `cgfw bench --compare` times and tests/test_parity.py compares against."""
        from cgfw import build_network
        from cgfw_paper.reference import load_reference

        reference = load_reference()
        paths = ("generator", "generator", "discriminator", "discriminator")
        nets = [build_network(resolved, p).to(device) for p in paths]
        for net, path in zip(nets, paths, strict=True):
            if resolved.components[path].plugin.startswith("paper-"):  # the authors' own nets
                reference.as_authors(net)
        keys: Any = resolved.keys  # the slots' keys models, declared above
        r = resolved.recipe
        lambdas = reference.Lambdas(
            cycle=keys["losses.cycle"].weight,
            identity=keys["losses.identity"].weight,
            gan=keys["losses.gan"].weight > 0,
            forward=keys["losses.cycle"].forward,
            backward=keys["losses.cycle"].backward,
        )
        pool = getattr(resolved.options["buffer"], "capacity", 0)
        # Their GANLoss knows lsgan and vanilla; any other loss is timed as lsgan (same cost).
        mode = "vanilla" if resolved.components["losses.gan"].name == "bce" else "lsgan"
        betas = tuple(r.optimizer.betas)
        return reference.AuthorsLoop(*nets, r.optimizer.lr, betas, lambdas, pool, gan_mode=mode)

    def setup(self, real_a: Tensor, real_b: Tensor) -> None:
        """The discriminators' output checked, then the stacking decision measured."""
        with torch.no_grad(), self.rt.autocast(), self.rt.uncompiled():
            check_output(self.d_b, real_b[:1], "discriminator", self.resolved, None)
        if not self.stacking.checked:  # a checkpoint loaded later replaces the decision
            self.stacking.check(self.rt, self.networks, real_a, real_b)
        self.streams = None if self.streams_obstacle(real_a, real_b) else shared()

    def streams_obstacle(self, real_a: Tensor, real_b: Tensor) -> str | None:
        """Why the step cannot run as two streams (`_step_in_streams`) here, or None."""
        rt, nets = self.rt, list(self.networks.values())
        if rt.device.type != "cpu" or rt.speed.compile != "off":
            return "not training eagerly on a CPU"
        if torch.get_num_threads() < 2:
            return "one thread"
        if rt.precision.scaler.is_enabled():
            return "a loss scale (fp16)"
        if not self.stacking.enabled:
            return "calls apart (the authors' order)"
        if self.gan_pair or self.regularizer is not None or self.augment is not None:
            return "a pair GAN loss, a regularizer or an augmentation"
        if share_parameters(nets):
            return "networks that share parameters"
        image, other = real_a[:1], real_b[:1]

        def calls() -> None:  # each network (in training mode) and each loss, once
            with rt.autocast():
                score = {name: net(image) for name, net in self.networks.items()}["d_b"]
                self.gan_loss(score, True, False)
                self.gan_loss(score, False, True)
                for loss in (self.cycle_loss, self.identity_loss, self.paired_loss):
                    loss(image, other)

        if draws_random(calls, nets):
            return "a network or loss that draws random numbers"
        return None

    @classmethod
    def graph_obstacle_for(cls, resolved: Resolved | RecipeView) -> str | None:
        """From the components' classes, before anything is built (graph_safe is a class
        attribute); a factory that is not a class is asked once built (`graph_obstacle`)."""
        parts = {s: c.target for s, c in resolved.components.items()}
        classes = {s: parts[s] for s in ("buffer", "regularizer", "augment") if s in parts}
        return _unsafe(resolved, {s: f for s, f in classes.items() if isinstance(f, type)})

    def graph_obstacle(self) -> str | None:
        """The same for the built parts (a factory that is not the class itself)."""
        built = {"buffer": self.pool_a, "regularizer": self.regularizer, "augment": self.augment}
        return _unsafe(self.resolved, {s: p for s, p in built.items() if p is not None})

    def _seen(self, images: Tensor) -> Tensor:
        """An image as a discriminator sees it: augmented, if the recipe says so."""
        return images if self.augment is None else self.augment(images)

    def _calls(self, net: nn.Module, *inputs: Tensor | None) -> list[Any]:
        """`net` on each input given (None: not needed, None out): one call on them stacked
        where `net` stacks and their sizes agree, else a call each, in the order given."""
        outputs = iter(self.stacking.together(self.rt, net, *(x for x in inputs if x is not None)))
        return [None if x is None else next(outputs) for x in inputs]

    def step(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        """Translate both ways, update both generators, then both discriminators on pooled
        fakes. Returns each weighted loss term, detached (.item() only when logging: it syncs)."""
        if self.streams is not None:  # on a CPU: the same step as two streams at once
            return self._step_in_streams(real_a, real_b)
        w, rt = self.weights, self.rt

        with rt.autocast():
            # 1. Translate A -> B and back, then B -> A and back; a reconstruction only where a
            #    cycle term uses it. With the identity loss, a generator also gets an image of
            #    its own target domain, which it should leave alone. A generator that stacks
            #    takes every input known by then in one call: g_ab real A and B, then g_ba real
            #    B and A and fake B (one call instead of two; the larger batch runs faster), then
            #    g_ab fake A. Calls apart are the authors', in their order (identity images after
            #    the cycles), so with both apart the step computes what their loop does, bit for
            #    bit.
            idt_b = idt_a = rec_a = None
            if self.stacking.stacks(self.g_ab):
                fake_b, idt_b = self._calls(self.g_ab, real_a, real_b if w.identity else None)
            else:
                fake_b = self.g_ab(real_a)
            if self.stacking.stacks(self.g_ba):
                fake_a, idt_a, rec_a = self._calls(
                    self.g_ba,
                    real_b,
                    real_a if w.identity else None,
                    fake_b if w.cycle_forward else None,
                )
            else:
                rec_a = self.g_ba(fake_b) if w.cycle_forward else None
                fake_a = self.g_ba(real_b)
            rec_b = self.g_ab(fake_a) if w.cycle_backward else None
            if w.identity:
                idt_b = self.g_ab(real_b) if idt_b is None else idt_b
                idt_a = self.g_ba(real_a) if idt_a is None else idt_a

            # 2. Generator losses, with the discriminators frozen (they pass gradients through).
            _requires_grad([self.d_a, self.d_b], False)
            terms: dict[str, Tensor] = {}
            if w.gan and not self.gan_pair:
                (judged_fake_b,), (judged_fake_a,) = self.stacking.judged(
                    rt, self.d_b, self.d_a, [self._seen(fake_b)], [self._seen(fake_a)]
                )
                terms["g_ab_gan"] = w.gan * self.gan_loss(judged_fake_b, True, False)
                terms["g_ba_gan"] = w.gan * self.gan_loss(judged_fake_a, True, False)
            elif w.gan:  # a pair loss also weighs the frozen D's scores of the real images
                judged_b = self.d_b(self._seen(real_b)), self.d_b(self._seen(fake_b))
                judged_a = self.d_a(self._seen(real_a)), self.d_a(self._seen(fake_a))
                terms["g_ab_gan"] = w.gan * self.gan_loss(*judged_b, False)
                terms["g_ba_gan"] = w.gan * self.gan_loss(*judged_a, False)
            if rec_a is not None:
                terms["cycle_a"] = w.cycle * self.cycle_loss(rec_a, real_a)
            if rec_b is not None:
                terms["cycle_b"] = w.cycle * self.cycle_loss(rec_b, real_b)
            if idt_b is not None and idt_a is not None:
                terms["idt_b"] = w.identity * self.identity_loss(idt_b, real_b)
                terms["idt_a"] = w.identity * self.identity_loss(idt_a, real_a)
            if w.paired:
                # Only with aligned pairs (real_b is real_a's counterpart): the upper bound.
                terms["paired_b"] = w.paired * self.paired_loss(fake_b, real_b)
                terms["paired_a"] = w.paired * self.paired_loss(fake_a, real_a)
        loss_g = sum(terms.values())
        assert isinstance(loss_g, Tensor)
        self.opt_g.zero_grad(set_to_none=True)
        rt.optimizer_step(loss_g, self.opt_g)  # both generators jointly
        _requires_grad([self.d_a, self.d_b], True)

        # 3. Discriminators on real images and fakes drawn from the history pools (kept in
        #    fp32); 0.5 halves D's learning rate relative to G, as in the paper.
        if w.gan:
            pooled_b = self._seen(self.pool_b.query(fake_b.detach().float()))
            pooled_a = self._seen(self.pool_a.query(fake_a.detach().float()))
            seen_b, seen_a = self._seen(real_b), self._seen(real_a)
            with rt.autocast():
                (judged_real_b, judged_fake_b), (judged_real_a, judged_fake_a) = (
                    self.stacking.judged(
                        rt, self.d_b, self.d_a, [seen_b, pooled_b], [seen_a, pooled_a]
                    )
                )
                if self.gan_pair:
                    terms["d_b"] = 0.5 * self.gan_loss(judged_real_b, judged_fake_b, True)
                    terms["d_a"] = 0.5 * self.gan_loss(judged_real_a, judged_fake_a, True)
                else:
                    terms["d_b"] = 0.5 * (
                        self.gan_loss(judged_real_b, True, True)
                        + self.gan_loss(judged_fake_b, False, True)
                    )
                    terms["d_a"] = 0.5 * (
                        self.gan_loss(judged_real_a, True, True)
                        + self.gan_loss(judged_fake_a, False, True)
                    )
                loss_d = terms["d_a"] + terms["d_b"]
                if self.regularizer is not None:
                    terms["reg_b"] = self.regularizer(self.d_b, seen_b, pooled_b)
                    terms["reg_a"] = self.regularizer(self.d_a, seen_a, pooled_a)
                    loss_d = loss_d + terms["reg_b"] + terms["reg_a"]
            self.opt_d.zero_grad(set_to_none=True)
            rt.optimizer_step(loss_d, self.opt_d)

        terms["g_total"] = loss_g
        return {name: t.detach() for name, t in terms.items()}

    def _step_in_streams(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        """`step`, as two streams at once (cgfw_paper/streams.py): the calling thread's for A ->
        B, the second thread's for B -> A. Each stream translates its real images (`forward`),
        then judges and reconstructs its fakes, which the frozen discriminator and the other
        generator see as leaves (`judge`), then takes the gradient that reached the fakes back
        through its own generator (`back`), and last updates its discriminator (`update`). The
        same terms, each differentiated once; only the order in which gradients are summed
        differs from `step`'s (g_ba's stacked call is two calls here): its values to rounding."""
        w, rt, streams = self.weights, self.rt, self.streams
        assert streams is not None
        a = _Stream(self.g_ab, self.g_ba, self.d_b, real_a, real_b, w.cycle_forward, "a")
        b = _Stream(self.g_ba, self.g_ab, self.d_a, real_b, real_a, w.cycle_backward, "b")

        def forward(s: _Stream) -> tuple[Tensor, Tensor | None]:
            with rt.autocast():
                fake, idt = self._calls(s.g, s.real, s.target if w.identity else None)
            return fake, idt

        def judge(s: _Stream, fake: Tensor) -> tuple[dict[str, Tensor], Tensor | None]:
            seen = fake.detach().requires_grad_()  # its gradient goes on in `back`
            terms = {}
            with rt.autocast():
                if w.gan:
                    terms[f"g_{s.g_name}_gan"] = w.gan * self.gan_loss(s.d(seen), True, False)
                if s.cycle:
                    terms[f"cycle_{s.own}"] = w.cycle * self.cycle_loss(s.other(seen), s.real)
                if w.paired:
                    terms[f"paired_{s.theirs}"] = w.paired * self.paired_loss(seen, s.target)
            if terms:
                sum(terms.values()).backward()  # type: ignore[union-attr]
            return terms, seen.grad

        def back(s: _Stream, fake: Tensor, grad: Tensor | None, idt: Tensor | None) -> Terms:
            roots: list[Tensor] = []
            grads: list[Tensor | None] = []
            terms = {}
            if grad is not None:
                roots.append(fake)
                grads.append(grad)
            if idt is not None:
                with rt.autocast():
                    term = w.identity * self.identity_loss(idt, s.target)
                terms[f"idt_{s.theirs}"] = term
                roots.append(term)
                grads.append(None)
            if roots:
                torch.autograd.backward(roots, grads)
            return terms

        def update(s: _Stream, pooled: Tensor) -> Terms:
            with rt.autocast():
                judged_real, judged_fake = self._calls(s.d, s.target, pooled)
                loss = 0.5 * (
                    self.gan_loss(judged_real, True, True) + self.gan_loss(judged_fake, False, True)
                )
            loss.backward()
            return {f"d_{s.theirs}": loss}

        (fake_b, idt_b), (fake_a, idt_a) = streams.both(lambda: forward(a), lambda: forward(b))
        _requires_grad([self.d_a, self.d_b], False)
        self.opt_g.zero_grad(set_to_none=True)
        (terms_a, grad_b), (terms_b, grad_a) = streams.both(
            lambda: judge(a, fake_b), lambda: judge(b, fake_a)
        )
        idt_terms = streams.both(
            lambda: back(a, fake_b, grad_b, idt_b), lambda: back(b, fake_a, grad_a, idt_a)
        )
        rt.apply_gradients(self.opt_g)
        _requires_grad([self.d_a, self.d_b], True)
        found = {**terms_a, **terms_b, **idt_terms[0], **idt_terms[1]}
        if w.gan:  # the pools draw in `step`'s order
            pooled_b = self.pool_b.query(fake_b.detach().float())
            pooled_a = self.pool_a.query(fake_a.detach().float())
            self.opt_d.zero_grad(set_to_none=True)
            d_terms = streams.both(lambda: update(a, pooled_b), lambda: update(b, pooled_a))
            rt.apply_gradients(self.opt_d)
            found |= {**d_terms[0], **d_terms[1]}
        terms = {name: found[name] for name in w.terms}  # in `step`'s order, for its g_total
        loss_g = sum(t for name, t in terms.items() if name not in ("d_a", "d_b"))
        assert isinstance(loss_g, Tensor)
        terms["g_total"] = loss_g
        return {name: t.detach() for name, t in terms.items()}

    def extra_state(self) -> dict[str, Any]:
        return {
            "buffers": {"a": self.pool_a.state_dict(), "b": self.pool_b.state_dict()},
            # The first batch's stacking decision, so a resumed run stacks exactly as before.
            "apart": [k for k, n in self.networks.items() if n in self.stacking.apart],
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_a.load_state_dict(state["buffers"]["a"])
        self.pool_b.load_state_dict(state["buffers"]["b"])
        if "apart" in state:  # checkpoints from before the measured decision check again
            saved = [n for k, n in self.networks.items() if k in state["apart"]]
            self.stacking.apart += [n for n in saved if n not in self.stacking.apart]
            self.stacking.checked = True
