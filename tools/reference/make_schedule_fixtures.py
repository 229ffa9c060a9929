"""Fixtures for sana-sr's flow-matching schedule (`crates/pipeline/src/scheduler.rs`): the sigmas and timesteps
of diffusers' `FlowMatchEulerDiscreteScheduler` after `set_timesteps(steps)`, for a few shifts (1 = none, 3 =
SANA's flow shift, a non-round one) and step counts, with the scheduler's default options otherwise.

Writes crates/pipeline/tests/fixtures/flow_match/schedules.json: a list of {shift, steps, sigmas, timesteps},
each value the float32 number diffusers holds, written as a float64 that equals it exactly.

Run from the repository root: .venv/bin/python tools/reference/make_schedule_fixtures.py
"""

import json
from pathlib import Path

from diffusers import FlowMatchEulerDiscreteScheduler

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/pipeline/tests/fixtures/flow_match/schedules.json"

SHIFTS = [1.0, 3.0, 2.37]
STEPS = [1, 2, 4, 7, 20]


def main():
    cases = []
    for shift in SHIFTS:
        for steps in STEPS:
            scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
            scheduler.set_timesteps(steps)
            cases.append(
                {
                    "shift": shift,
                    "steps": steps,
                    "sigmas": [float(s) for s in scheduler.sigmas.tolist()],
                    "timesteps": [float(t) for t in scheduler.timesteps.tolist()],
                }
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(cases, indent=1) + "\n")
    print(f"wrote {len(cases)} schedules to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
