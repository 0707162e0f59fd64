"""The study's ``A@B=`` family (copy either operand, or add them) and its small integer maps."""

from superpose.tasks.base import InputSpace, Task, register

# A != B, so that the two copy tasks never agree on an example.
OPERAND_PAIRS = InputSpace(
    name="operand_pair_at",
    items=tuple((a, b) for a in range(10, 100) for b in range(10, 100) if a != b),
    render=lambda ab: f"{ab[0]}@{ab[1]}",
)

_FAMILY = "A@B="
for _name, _fn, _desc in [
    ("copy_op1", lambda ab: str(ab[0]), "A@B= -> A (copy the first operand)"),
    ("copy_op2", lambda ab: str(ab[1]), "A@B= -> B (copy the second operand)"),
    ("op1_plus_op2", lambda ab: str(ab[0] + ab[1]), "A@B= -> A+B"),
]:
    register(Task(_name, OPERAND_PAIRS, "=", _fn, _desc, family=_FAMILY))

SMALL_INTEGERS = InputSpace(name="integer_0_99", items=tuple(range(100)))

_MAPS = "x->"
for _name, _fn, _desc in [
    ("identity", lambda x: str(x), "x -> x"),
    ("negate", lambda x: str(-x), "x -> -x"),
    ("plus_one", lambda x: str(x + 1), "x -> x+1"),
    ("minus_one", lambda x: str(x - 1), "x -> x-1"),
    ("double", lambda x: str(2 * x), "x -> 2x"),
    ("square", lambda x: str(x * x), "x -> x^2"),
]:
    register(Task(_name, SMALL_INTEGERS, "->", _fn, _desc, family=_MAPS))
