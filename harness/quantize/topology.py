"""Which weight nodes feed which neuron population (the unit that shares one scale).

A *population* is a node whose parameters carry voltages (see
:data:`harness.quantize.format.POPULATION_PARAMS`). Weight nodes (Affine, Linear, Conv1d,
Conv2d) reach populations directly or through *linear pass-through* nodes (SumPool2d,
AvgPool2d, Flatten, Scale, Delay), which commute with a positive scale. Recurrent weights
(``pop -> Linear -> pop``) count like any other incoming weight. Populations joined by a
shared weight node must share one scale, so scales are assigned per *group* (a connected
component of weight nodes and populations).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Set, Tuple

from s2common.errors import QuantizationError
from s2common.graph import FlatGraph, incoming_sources

from .format import POPULATION_PARAMS, SPIKING_TYPES, WEIGHT_TYPES

#: nodes that pass a scaled signal on unchanged in meaning (linear, no offset)
PASS_THROUGH = ("SumPool2d", "AvgPool2d", "Flatten", "Scale", "Delay")


@dataclass
class Group:
    """Populations and the weight nodes feeding them, sharing one scale (per channel, optionally).

    Attributes:
        populations: population node names (sorted).
        weights: weight node names (sorted).
        flattened: weight nodes whose path to a population passes a Flatten (channel axis lost).
    """

    populations: List[str]
    weights: List[str]
    flattened: Set[str] = field(default_factory=set)


@dataclass
class Topology:
    """Result of :func:`analyse`.

    Attributes:
        groups: groups with at least one weight node.
        unweighted: populations fed only by unscaled signals (Input, spikes through pooling): lambda = 1.
        targets: weight node -> populations it reaches.
    """

    groups: List[Group]
    unweighted: List[str]
    targets: Dict[str, List[str]]


def analyse(flat: FlatGraph) -> Topology:
    """Find each weight node's target populations and group them.

    Whether a population also receives unweighted input is :func:`s2common.graph.incoming_sources`'s walk
    through :data:`PASS_THROUGH` nodes.

    Raises:
        QuantizationError: two weight layers in a row, a weight node that reaches no
            population (e.g. ``Affine -> Output``), a population fed by both weighted and
            unweighted inputs, a non-spiking population (LI, CubaLI, I) whose scaled output
            feeds another weight node.
    """
    nodes = flat.nodes
    types = {n: type(v).__name__ for n, v in nodes.items()}
    succ: Dict[str, List[str]] = {n: [] for n in nodes}
    for s, t in flat.edges:
        succ[s].append(t)

    targets: Dict[str, List[str]] = {}
    flattened: Set[Tuple[str, str]] = set()
    for w in sorted(n for n in nodes if types[n] in WEIGHT_TYPES):
        found: List[str] = []
        stack: List[Tuple[str, bool]] = [(s, False) for s in succ[w]]
        seen: Set[Tuple[str, bool]] = set()
        while stack:
            n, via_flatten = stack.pop()
            if (n, via_flatten) in seen:
                continue
            seen.add((n, via_flatten))
            t = types[n]
            if t in POPULATION_PARAMS:
                if n not in found:
                    found.append(n)
                if via_flatten:
                    flattened.add((w, n))
            elif t in PASS_THROUGH:
                stack.extend((s, via_flatten or t == "Flatten") for s in succ[n])
            elif t in WEIGHT_TYPES:
                raise QuantizationError(f"weight node feeds another weight node '{n}' with no neuron population between",
                                        node=w, rule="consecutive-weights",
                                        hint="fold the two layers into one, or put a neuron population between them")
            else:
                raise QuantizationError(f"weight node reaches a {t} node '{n}' without passing a neuron population, "
                                        "so its scale cannot be compensated", node=w, rule="weight-without-population",
                                        hint="end every weight layer in a neuron population (IF, LIF, CubaLIF, LI...)")
        if not found:
            raise QuantizationError("weight node reaches no neuron population", node=w, rule="weight-without-population",
                                    hint="end every weight layer in a neuron population")
        targets[w] = sorted(found)

    pops = sorted(n for n in nodes if types[n] in POPULATION_PARAMS)
    incoming: Dict[str, Set[str]] = {p: set() for p in pops}
    for w, ps in targets.items():
        for p in ps:
            incoming[p].add(w)
    unweighted: List[str] = []
    for p in pops:
        # walk back through pass-through nodes: does an unscaled signal also arrive?
        raw_sources = incoming_sources(flat, p, through=PASS_THROUGH).unweighted
        if raw_sources and incoming[p]:
            raise QuantizationError(f"population receives weighted input and also unweighted input from "
                                    f"'{raw_sources[0]}'; one scale cannot serve both", node=p,
                                    rule="unweighted-input", hint="route every input of a population through a weight layer")
        if not incoming[p]:
            unweighted.append(p)
        if types[p] not in SPIKING_TYPES:
            # its output is a voltage/current in chip units: it must not feed weights
            stack = list(succ[p])
            seen = set()
            while stack:
                n = stack.pop()
                if n in seen:
                    continue
                seen.add(n)
                if types[n] in WEIGHT_TYPES:
                    raise QuantizationError(f"non-spiking {types[p]} population feeds weight node '{n}'; its output "
                                            "would reach it in scaled units", node=p, rule="non-spiking-source",
                                            hint="use a spiking population (IF, LIF, CubaLIF) before a weight layer")
                if types[n] in PASS_THROUGH:
                    stack.extend(succ[n])

    # union-find over weight nodes and populations
    parent: Dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for w, ps in targets.items():
        for p in ps:
            parent[find(w)] = find(p)
    comps: Dict[str, Group] = {}
    for w, ps in targets.items():
        g = comps.setdefault(find(w), Group(populations=[], weights=[]))
        g.weights.append(w)
        for p in ps:
            if p not in g.populations:
                g.populations.append(p)
            if (w, p) in flattened:
                g.flattened.add(w)
    groups = []
    for g in comps.values():
        g.weights.sort()
        g.populations.sort()
        groups.append(g)
    groups.sort(key=lambda g: g.populations[0])
    return Topology(groups=groups, unweighted=unweighted, targets=targets)
