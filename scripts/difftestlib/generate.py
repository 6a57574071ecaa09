"""The program of a seed: a moe program or a linalg program."""
import random

from .common import GenError, Program
from .gen_linalg import LinalgGen
from .gen_moe import MoEGen


def generate(seed):
    """The program of `seed` (deterministic)."""
    for attempt in range(20):
        rng = random.Random("difftest-%d-%d" % (seed, attempt))
        kind = "moe" if rng.random() < 0.6 else "linalg"
        prog = Program(seed, kind)
        try:
            if kind == "moe":
                MoEGen(prog, rng).generate()
            else:
                LinalgGen(prog, rng).generate()
            # Sometimes a tiny state budget: the scheduler's heuristics
            # instead of its exact search (moe-opt runs only).
            extra = random.Random("difftest-budget-%d" % seed)
            if extra.random() < 0.3:
                prog.budget = " state-budget=%d" % extra.choice([1, 2, 5, 20])
                prog.features.add("heuristic-schedule")
            return prog
        except GenError:
            continue
    raise RuntimeError("cannot generate a program for seed %d" % seed)
