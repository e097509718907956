"""fight.py: Neo against the Agent (seed 000, EX00), the model answer.

Each turn the agent yields a random action and Neo answers it: a kick with the block of the same
height, a block with the kick at the other height. Only Neo's kicks land, so the agent loses one
health exactly when it blocked; at 0, Neo wins. The bonus `fightmany(n)` fights n agents at once.

    python fight.py        # one agent
    python fight.py 3      # three agents at once (the bonus)

The given code below is the assignment's, unmodified.
"""

import asyncio
import sys

from enum import Enum, auto
from random import choice


class Action(Enum):
    HIGHKICK = auto()
    LOWKICK = auto()
    HIGHBLOCK = auto()
    LOWBLOCK = auto()


class Agent:

    def __aiter__(self, health=5):
        self.health = health
        self.actions = list(Action)
        return self

    async def __anext__(self):
        return choice(self.actions)


# End of the given code.

# Neo's answer to each of the agent's actions.
ANSWER = {
    Action.HIGHKICK: Action.HIGHBLOCK,
    Action.LOWKICK: Action.LOWBLOCK,
    Action.HIGHBLOCK: Action.LOWKICK,
    Action.LOWBLOCK: Action.HIGHKICK,
}
# The agent's actions that Neo answers with a kick, which lands.
BLOCKS = frozenset({Action.HIGHBLOCK, Action.LOWBLOCK})


async def duel(agent: Agent, name: str) -> None:
    """Fight one agent until its health is 0, printing one line per turn."""
    async for action in agent:
        if action in BLOCKS:
            agent.health -= 1
        print(f"{name}: {action}, Neo: {ANSWER[action]}, {name} Health: {agent.health}")
        if agent.health == 0:
            return
        # The agent's __anext__ never suspends, so without this one duel would run to its end
        # before the next began: fightmany's agents take turns here.
        await asyncio.sleep(0)


async def fight() -> None:
    """One agent against Neo, until Neo wins."""
    await duel(Agent(), "Agent")
    print("Neo wins!")


async def fightmany(n: int) -> None:
    """n agents, numbered 1 to n, against Neo at once; Neo wins when every one is at 0."""
    await asyncio.gather(*(duel(Agent(), f"Agent {k}") for k in range(1, n + 1)))
    print("Neo wins!")


def main(argv: list[str]) -> int:
    """Run fight(), or fightmany(n) when a number of agents is given; 2 for a bad argument."""
    if not argv:
        asyncio.run(fight())
        return 0
    if len(argv) == 1 and argv[0].isdigit() and int(argv[0]) > 0:
        asyncio.run(fightmany(int(argv[0])))
        return 0
    print("usage: python fight.py [NUMBER_OF_AGENTS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
