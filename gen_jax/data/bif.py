"""Discrete Bayesian networks in the Bayesian Interchange Format (BIF): read, write, find.

A BIF file (plain or .gz) declares variables with their states and one
probability block per variable:

  variable lung { type discrete [ 2 ] { yes, no }; }
  probability ( lung | smoke ) { (yes) 0.1, 0.9; (no) 0.01, 0.99; }

Roots give `table p1, p2, ...;`; a conditional gives one row per parent
configuration, labelled by the parents' states in the order the block names
the parents (a conditional `table` lists the rows in that order, the last
parent's state changing fastest; `default` fills the rows not listed).
`property` lines and C/C++ comments are skipped. Anything else is one
`DataError` line naming the file, the line and what was expected there.

`find(network, path)` resolves a network without downloading anything:
  1. `path` (config data.path), a .bif or .bif.gz file;
  2. `network` itself when it names such a file;
  3. "asia": the ASIA network (Lauritzen & Spiegelhalter 1988), embedded
     below, so smokes and tests need no files;
  4. <BNLEARN_DIR>/<network>.bif[.gz] (a folder of the bnlearn networks);
  5. the copy pgmpy ships in its wheel (utils/example_models/<network>.bif.gz),
     found without importing pgmpy.
"""
import dataclasses
import functools
import gzip
import importlib.util
import os
import re

import numpy as np

from gen_jax import errors
from gen_jax.inference import variable_elimination as ve

ENV_DIR = "BNLEARN_DIR"
ROW_TOL = 1e-2   # a CPD row may sum to 1 +- ROW_TOL (rounded files); it is renormalized

# ASIA (Lauritzen & Spiegelhalter 1988, "Local computations with probabilities on
# graphical structures", Fig. 1 and its table of conditional probabilities).
ASIA_BIF = """network asia {
}
variable asia { type discrete [ 2 ] { yes, no }; }
variable tub { type discrete [ 2 ] { yes, no }; }
variable smoke { type discrete [ 2 ] { yes, no }; }
variable lung { type discrete [ 2 ] { yes, no }; }
variable bronc { type discrete [ 2 ] { yes, no }; }
variable either { type discrete [ 2 ] { yes, no }; }
variable xray { type discrete [ 2 ] { yes, no }; }
variable dysp { type discrete [ 2 ] { yes, no }; }
probability ( asia ) { table 0.01, 0.99; }
probability ( tub | asia ) { (yes) 0.05, 0.95; (no) 0.01, 0.99; }
probability ( smoke ) { table 0.5, 0.5; }
probability ( lung | smoke ) { (yes) 0.1, 0.9; (no) 0.01, 0.99; }
probability ( bronc | smoke ) { (yes) 0.6, 0.4; (no) 0.3, 0.7; }
probability ( either | lung, tub ) {
  (yes, yes) 1.0, 0.0; (no, yes) 1.0, 0.0; (yes, no) 1.0, 0.0; (no, no) 0.0, 1.0;
}
probability ( xray | either ) { (yes) 0.98, 0.02; (no) 0.05, 0.95; }
probability ( dysp | bronc, either ) {
  (yes, yes) 0.9, 0.1; (no, yes) 0.7, 0.3; (yes, no) 0.8, 0.2; (no, no) 0.1, 0.9;
}
"""
EMBEDDED = {"asia": ASIA_BIF}


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
  """A discrete Bayesian network with its conditional probability tables.

  Attributes:
    name: the network's name (file stem).
    variables: variable names, in the order the file declares them; data
      columns follow this order.
    states: the state names of each variable.
    parents: parent indices of each variable, in the order its probability
      block names them.
    cpts: f64[*parent cards, card] per variable: cpts[v][u..., x] =
      P(X_v = x | parents = u), rows summing to 1.
  """
  name: str
  variables: tuple
  states: tuple
  parents: tuple
  cpts: tuple

  @functools.cached_property
  def graph(self) -> ve.Graph:
    """The static structure (names, states, parents) that inference plans on."""
    return ve.Graph(self.variables, self.states, self.parents)

  @property
  def cards(self) -> tuple:
    return tuple(len(s) for s in self.states)

  def log_cpts(self, dtype=np.float32) -> list:
    """log CPTs (log 0 = -inf), one array per variable, as `variable_elimination` takes them."""
    with np.errstate(divide="ignore"):
      return [np.log(t).astype(dtype) for t in self.cpts]

  def num_parameters(self) -> int:
    """Free parameters: sum over variables of (card - 1) x parent configurations."""
    return int(sum((t.shape[-1] - 1) * (t.size // t.shape[-1]) for t in self.cpts))


def parse(text: str, source: str = "<string>", name: str = "") -> Network:
  """Parses BIF text; `source` names it in errors ("file.bif" -> "file.bif:12: ...")."""
  p = _Parser(text, source)
  net_name, variables, blocks = p.document()
  return _build(name or net_name, variables, blocks, source)


def read(path: str) -> Network:
  """Reads a .bif or .bif.gz file."""
  if not os.path.isfile(path):
    raise errors.DataError(f"BIF file not found: {path}")
  try:
    with open(path, "rb") as f:
      raw = f.read()
    if raw[:2] == b"\x1f\x8b":
      raw = gzip.decompress(raw)
    text = raw.decode("utf-8", errors="replace")
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise errors.DataError(f"{path}: not a readable BIF file ({type(e).__name__}: {e})") from e
  stem = os.path.basename(path)
  for ext in (".gz", ".bif"):
    stem = stem[:-len(ext)] if stem.endswith(ext) else stem
  return parse(text, path, stem)


def to_bif(net: Network) -> str:
  """The network as BIF text (rows for conditionals), read back by `parse` exactly."""
  out = [f"network {net.name} {{", "}"]
  for v, states in zip(net.variables, net.states, strict=True):
    out.append(f"variable {v} {{")
    out.append(f"  type discrete [ {len(states)} ] {{ {', '.join(states)} }};")
    out.append("}")
  for v, name in enumerate(net.variables):
    pa = net.parents[v]
    table = net.cpts[v]
    if not pa:
      out.append(f"probability ( {name} ) {{")
      out.append(f"  table {', '.join(repr(float(p)) for p in table)};")
    else:
      out.append(f"probability ( {name} | {', '.join(net.variables[u] for u in pa)} ) {{")
      for idx in np.ndindex(*table.shape[:-1]):
        label = ", ".join(net.states[u][i] for u, i in zip(pa, idx, strict=True))
        out.append(f"  ({label}) {', '.join(repr(float(p)) for p in table[idx])};")
    out.append("}")
  return "\n".join(out) + "\n"


def find(network: str, path: str = "") -> Network:
  """The network from `path`, a file named `network`, the embedded ASIA,
  $BNLEARN_DIR or pgmpy's bundled copy, in that order (see the module docstring)."""
  if path:
    return _read_cached(os.path.abspath(path))
  if not network:
    raise errors.ConfigError("no Bayesian network given: set model.network (and "
                             "data.options.network) to 'asia', a bnlearn name or a .bif file")
  if network.endswith((".bif", ".bif.gz")) or os.path.isfile(network):
    return _read_cached(os.path.abspath(network))
  if network in EMBEDDED:
    return _embedded(network)
  folder = os.environ.get(ENV_DIR, "")
  tried = []
  if folder:
    for ext in (".bif", ".bif.gz"):
      candidate = os.path.join(folder, network + ext)
      if os.path.isfile(candidate):
        return _read_cached(os.path.abspath(candidate))
    tried.append(f"${ENV_DIR}={folder} has no {network}.bif[.gz]")
  spec = importlib.util.find_spec("pgmpy")
  if spec is not None and spec.submodule_search_locations:
    candidate = os.path.join(list(spec.submodule_search_locations)[0], "utils",
                             "example_models", network + ".bif.gz")
    if os.path.isfile(candidate):
      return _read_cached(candidate)
    tried.append(f"pgmpy has no bundled {network}.bif.gz")
  why = f" ({'; '.join(tried)})" if tried else ""
  raise errors.DataError(
      f"Bayesian network {network!r} not found{why}: set {ENV_DIR} to a folder of "
      f"<name>.bif[.gz] files (the bnlearn repository), or pass "
      f"--config.data.path=FILE.bif[.gz], or pip install pgmpy==1.1.2 (its wheel bundles the "
      f"bnlearn networks); only 'asia' is built in")


@functools.lru_cache(maxsize=16)
def _read_cached(path: str) -> Network:
  return read(path)


@functools.lru_cache(maxsize=None)
def _embedded(name: str) -> Network:
  return parse(EMBEDDED[name], f"<embedded {name}>", name)


# --------------------------------------------------------------------------------------
# Tokenizer and parser.

_TOKEN = re.compile(r"""
    (?P<skip>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<quoted>"[^"]*")
  | (?P<punct>[{}()\[\],;|])
  | (?P<word>[^\s{}()\[\],;|"]+)
""", re.S | re.X)


class _Parser:
  """Recursive descent over (token, line) pairs; every error is one line."""

  def __init__(self, text: str, source: str):
    self.source = source
    self.tokens = []
    line, pos = 1, 0
    while pos < len(text):
      m = _TOKEN.match(text, pos)
      if m is None:
        self.fail(f"unexpected character {text[pos]!r}", line)
      tok = m.group()
      if m.lastgroup != "skip":
        self.tokens.append((tok.strip('"') if m.lastgroup == "quoted" else tok, line))
      line += tok.count("\n")
      pos = m.end()
    if text.count("/*") > text.count("*/"):
      self.fail("unterminated /* comment", line)
    self.i = 0
    self.end_line = line

  def fail(self, what: str, line: int | None = None):
    line = self.line if line is None else line
    raise errors.DataError(f"{self.source}:{line}: {what} (not a valid BIF file)")

  @property
  def line(self) -> int:
    return self.tokens[self.i][1] if self.i < len(self.tokens) else self.end_line

  def peek(self) -> str | None:
    return self.tokens[self.i][0] if self.i < len(self.tokens) else None

  def next(self, what: str) -> str:
    tok = self.peek()
    if tok is None:
      self.fail(f"expected {what}, got the end of the file")
    self.i += 1
    return tok

  def expect(self, tok: str, where: str) -> None:
    got = self.peek()
    if got != tok:
      self.fail(f"expected {tok!r} {where}, got {'end of file' if got is None else repr(got)}")
    self.i += 1

  def word(self, what: str) -> str:
    tok = self.next(what)
    if tok in "{}()[],;|":
      self.i -= 1
      self.fail(f"expected {what}, got {tok!r}")
    return tok

  def skip_property(self) -> None:
    while self.next("';' ending the property") != ";":
      pass

  def number(self, where: str) -> float:
    tok = self.word(f"a probability {where}")
    try:
      value = float(tok)
    except ValueError:
      self.i -= 1
      self.fail(f"expected a probability {where}, got {tok!r}")
    if not np.isfinite(value) or value < 0:
      self.i -= 1
      self.fail(f"probability {tok} {where} is not a finite number >= 0")
    return value

  def numbers(self, where: str) -> list:
    values = [self.number(where)]
    while self.peek() == ",":
      self.i += 1
      values.append(self.number(where))
    self.expect(";", f"after the probabilities {where}")
    return values

  def document(self):
    net_name, variables, blocks = "", [], []
    while self.peek() is not None:
      kw = self.next("a block")
      if kw == "network":
        parts = []
        while self.peek() not in ("{", None):
          parts.append(self.next("the network name"))
        net_name = "_".join(parts)
        self.expect("{", "after the network name")
        while self.peek() != "}":
          if self.next("'property' or '}'") != "property":
            self.i -= 1
            self.fail(f"expected 'property' or '}}' in the network block, got {self.peek()!r}")
          self.skip_property()
        self.expect("}", "closing the network block")
      elif kw == "variable":
        variables.append(self.variable())
      elif kw == "probability":
        blocks.append(self.probability())
      else:
        self.i -= 1
        self.fail(f"expected 'network', 'variable' or 'probability', got {kw!r}")
    return net_name, variables, blocks

  def variable(self):
    line = self.line
    name = self.word("a variable name")
    self.expect("{", f"after 'variable {name}'")
    states = None
    while self.peek() != "}":
      kw = self.next(f"'type' or 'property' in variable {name}")
      if kw == "property":
        self.skip_property()
        continue
      if kw != "type":
        self.i -= 1
        self.fail(f"expected 'type' or 'property' in variable {name!r}, got {kw!r}")
      self.expect("discrete", f"after 'type' (variable {name!r}; only discrete variables)")
      self.expect("[", f"before the number of states of {name!r}")
      count_tok = self.word(f"the number of states of {name!r}")
      if not count_tok.isdigit() or int(count_tok) < 1:
        self.i -= 1
        self.fail(f"the number of states of {name!r} must be an integer >= 1, got {count_tok!r}")
      self.expect("]", f"after the number of states of {name!r}")
      self.expect("{", f"before the states of {name!r}")
      states = [self.word(f"a state of {name!r}")]
      while self.peek() == ",":
        self.i += 1
        states.append(self.word(f"a state of {name!r}"))
      self.expect("}", f"after the states of {name!r}")
      self.expect(";", f"after the type of {name!r}")
      if len(states) != int(count_tok):
        self.fail(f"variable {name!r} declares {count_tok} states but lists {len(states)}", line)
      if len(set(states)) != len(states):
        self.fail(f"variable {name!r} lists a state twice: {states}", line)
    self.expect("}", f"closing variable {name!r}")
    if states is None:
      self.fail(f"variable {name!r} has no 'type discrete [...] {{...}};'", line)
    return name, tuple(states), line

  def probability(self):
    line = self.line
    self.expect("(", "after 'probability'")
    child = self.word("the variable of the probability block")
    parents = []
    if self.peek() == "|":
      self.i += 1
      parents.append(self.word(f"a parent of {child!r}"))
      while self.peek() == ",":
        self.i += 1
        parents.append(self.word(f"a parent of {child!r}"))
    self.expect(")", f"after the variables of the probability block of {child!r}")
    self.expect("{", f"opening the probability block of {child!r}")
    table, rows, default = None, [], None
    while self.peek() != "}":
      tok = self.next(f"an entry of the probability block of {child!r}")
      where = f"of {child!r}"
      if tok == "table":
        table = self.numbers(where)
      elif tok == "default":
        default = self.numbers(where)
      elif tok == "property":
        self.skip_property()
      elif tok == "(":
        row_line = self.tokens[self.i - 1][1]
        label = [self.word(f"a parent state of {child!r}")]
        while self.peek() == ",":
          self.i += 1
          label.append(self.word(f"a parent state of {child!r}"))
        self.expect(")", f"after the parent states of a row of {child!r}")
        rows.append((tuple(label), self.numbers(where), row_line))
      else:
        self.i -= 1
        self.fail(f"expected 'table', '(parent states) p, ...;' or 'default' in the "
                  f"probability block of {child!r}, got {tok!r}")
    self.expect("}", f"closing the probability block of {child!r}")
    return dict(child=child, parents=tuple(parents), table=table, rows=rows,
                default=default, line=line)


def _build(name, variables, blocks, source) -> Network:
  """Checks the parsed blocks against each other and builds the tables."""
  def fail(what, line):
    raise errors.DataError(f"{source}:{line}: {what} (not a valid BIF file)")

  index = {}
  for v, (var, _, line) in enumerate(variables):
    if var in index:
      fail(f"variable {var!r} is declared twice", line)
    index[var] = v
  if not variables:
    fail("no variables declared", 1)
  states = tuple(s for _, s, _ in variables)
  names = tuple(v for v, _, _ in variables)
  parents = [None] * len(names)
  cpts = [None] * len(names)
  for b in blocks:
    child, line = b["child"], b["line"]
    for var in (child,) + b["parents"]:
      if var not in index:
        fail(errors.choices("variable", var, names) if len(names) <= 30 else
             f"unknown variable {var!r} (not declared)", line)
    v = index[child]
    if cpts[v] is not None:
      fail(f"variable {child!r} has two probability blocks", line)
    pa = tuple(index[p] for p in b["parents"])
    if v in pa or len(set(pa)) != len(pa):
      fail(f"the parents of {child!r} repeat a variable or name {child!r} itself", line)
    card = len(states[v])
    pcards = tuple(len(states[u]) for u in pa)
    table = np.full(pcards + (card,), np.nan)
    if b["table"] is not None:
      if len(b["table"]) != table.size:
        fail(f"the table of {child!r} has {len(b['table'])} entries; expected {table.size} "
             f"({' x '.join(map(str, pcards + (card,)))})", line)
      table = np.asarray(b["table"], np.float64).reshape(table.shape)
    for label, values, row_line in b["rows"]:
      if len(label) != len(pa):
        fail(f"a row of {child!r} names {len(label)} parent states; expected {len(pa)}",
             row_line)
      idx = []
      for u, s in zip(pa, label, strict=True):
        if s not in states[u]:
          fail(errors.choices(f"state of {names[u]!r}", s, states[u]), row_line)
        idx.append(states[u].index(s))
      if len(values) != card:
        fail(f"a row of {child!r} has {len(values)} probabilities; {child!r} has {card} "
             f"states", row_line)
      table[tuple(idx)] = values
    if b["default"] is not None:
      if len(b["default"]) != card:
        fail(f"the default row of {child!r} has {len(b['default'])} probabilities; expected "
             f"{card}", line)
      missing = np.isnan(table[..., 0])
      table[missing] = b["default"]
    if np.isnan(table).any():
      idx = np.argwhere(np.isnan(table[..., 0]))[0] if pa else ()
      label = ", ".join(states[u][i] for u, i in zip(pa, idx, strict=True))
      fail(f"the probability block of {child!r} has no row for ({label})", line)
    sums = table.sum(-1)
    bad = np.abs(sums - 1.0) > ROW_TOL
    if bad.any():
      idx = np.argwhere(bad)[0] if pa else ()
      label = ", ".join(states[u][i] for u, i in zip(pa, idx, strict=True))
      fail(f"a row of {child!r} ({label}) sums to {sums[tuple(idx)]:.6g}, not 1", line)
    parents[v] = pa
    cpts[v] = table / sums[..., None]
  for v, (var, _, line) in enumerate(variables):
    if cpts[v] is None:
      fail(f"variable {var!r} has no probability block", line)
  net = Network(name, names, states, tuple(parents), tuple(cpts))
  try:
    _ = net.graph.topological_order   # raises on a directed cycle
  except errors.GenJaxError as e:
    raise errors.DataError(f"{source}: {e}") from None
  return net
