"""WordNet for EDA synonym replacement, from local files only.

Order: (1) an NLTK `wordnet` corpus nltk already finds (NLTK_DATA, ~/nltk_data, ...);
(2) Debian's `wordnet-base` files in /usr/share/wordnet, copied once into an NLTK data
layout in the user cache (nltk's path guard rejects symlinks leaving its data root) with
the `lexnames` file Debian does not ship; (3) one clear error saying how to install it.

The reader is nltk's own WordNetCorpusReader without its load-time costs (seconds, more
than the synonym replacement of a whole suite; what synsets() returns is unchanged):
- the lemma index (lemma -> part of speech -> synset offsets) is looked up on demand by
  binary search in the sorted index.* files, as WordNet's own C library does, instead of
  parsing all 155,000 lines at load; an entry is parsed exactly as nltk parses it, and
  anything that iterates over the whole index loads it the nltk way first;
- adjective satellites are told apart when a lemma is looked up (the synset's type in
  data.adj), not by scanning all of data.adj at load;
- the exception lists are read through a buffered text stream instead of nltk's
  pure-Python seekable reader;
- the WordNet-3.0 -> loaded-version synset map, which only the multilingual (OMW)
  functions use and which nltk 3.10 rebuilds from index.sense on every load even when
  the versions are the same, is not built.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

from emidbench.common.errors import UserError

DEBIAN_WORDNET = Path("/usr/share/wordnet")
NEEDED = [f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")] + \
         [f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")]

# WordNet 3.0's lexicographer files: number, name, part-of-speech number (lexnames(5WN)).
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
]
POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{POS_NUMBER[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def cache_root() -> Path:
    if os.environ.get("EMIDBENCH_CACHE"):
        return Path(os.environ["EMIDBENCH_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "emidbench"


_READY = None


def _reader_class():
    from nltk.corpus.reader.wordnet import ADJ, ADJ_SAT, WordNetCorpusReader, WordNetError

    class LazyIndex(dict):
        """nltk's `_lemma_pos_offset_map` (a defaultdict(dict)), filled on demand."""

        def __init__(self, reader):
            super().__init__()
            self.reader = reader
            self.files: dict = {}  # pos -> bytes of index.<suffix>
            self.complete = False

        def _index(self, pos: str) -> bytes:
            if pos not in self.files:
                with self.reader.abspath(f"index.{self.reader._FILEMAP[pos]}").open() as f:
                    self.files[pos] = f.read()
            return self.files[pos]

        def _find_line(self, data: bytes, key: bytes) -> bytes | None:
            """The line whose first field is `key` in a file sorted by it (byte order;
            the license lines at the top start with a space and sort first)."""
            lo, hi = 0, len(data)
            while lo < hi:
                mid = (lo + hi) // 2
                start = data.rfind(b"\n", 0, mid) + 1
                end = data.find(b"\n", start)
                end = len(data) if end < 0 else end
                line = data[start:end]
                head = b"" if line.startswith(b" ") else line.split(b" ", 1)[0]
                if head == key:
                    return line
                if head < key:
                    lo = end + 1
                else:
                    hi = start
            return None

        def _lookup(self, lemma: str) -> dict:
            entry: dict = {}
            key = lemma.encode("utf-8")
            if not key or any(c in key for c in b" \t\n\r"):
                return entry  # never an index key
            for pos, suffix in self.reader._FILEMAP.items():
                line = self._find_line(self._index(pos), key)
                if line is None:
                    continue
                tokens = line.decode("utf-8").split()
                try:  # as nltk's _load_lemma_pos_offset_map
                    pos_, n_synsets = tokens[1], int(tokens[2])
                    assert n_synsets > 0
                    n_pointers = int(tokens[3])
                    n_senses = int(tokens[4 + n_pointers])
                    assert n_synsets == n_senses
                    first = 6 + n_pointers
                    offsets = [int(t) for t in tokens[first:first + n_synsets]]
                    assert len(offsets) == n_synsets
                except (AssertionError, ValueError, IndexError) as e:
                    raise WordNetError(f"file index.{suffix}, lemma {lemma}: {e}") from e
                entry[pos_] = offsets
                if pos_ == ADJ:
                    entry[ADJ_SAT] = [o for o in offsets if self.reader._is_satellite(o)]
            return entry

        def __missing__(self, lemma):
            if self.complete or not isinstance(lemma, str):
                entry = {}
            else:
                entry = self._lookup(lemma)
            dict.__setitem__(self, lemma, entry)
            return entry

        def __contains__(self, lemma) -> bool:
            if dict.__contains__(self, lemma):
                return bool(dict.__getitem__(self, lemma)) or self.complete
            return bool(self[lemma]) if not self.complete else False

        def get(self, lemma, default=None):
            return self[lemma] if lemma in self else default

        def load_all(self) -> None:
            if not self.complete:
                self.clear()
                self.complete = True
                self.reader._load_all()

        def __iter__(self):
            self.load_all()
            return dict.__iter__(self)

        def __len__(self) -> int:
            self.load_all()
            return dict.__len__(self)

        def keys(self):
            self.load_all()
            return dict.keys(self)

        def items(self):
            self.load_all()
            return dict.items(self)

        def values(self):
            self.load_all()
            return dict.values(self)

    class FastLoadWordNet(WordNetCorpusReader):
        """nltk's reader with its lemma index looked up on demand (see the module doc)."""

        _SEQUENTIAL = ("lexnames", "index.adj", "index.adv", "index.noun", "index.verb",
                       "adj.exc", "adv.exc", "noun.exc", "verb.exc")

        def open(self, file):
            if file in self._SEQUENTIAL:
                return io.TextIOWrapper(self.abspath(file).open(), encoding=self.encoding(file))
            return super().open(file)

        def _scan_satellites(self):
            self._adj_data = None  # read on the first satellite question

        def _is_satellite(self, offset: int) -> bool:
            if self._adj_data is None:
                with self.abspath("data.adj").open() as f:
                    self._adj_data = f.read()
            end = self._adj_data.find(b"\n", offset)
            fields = self._adj_data[offset:end if end >= 0 else None].split()
            return len(fields) >= 3 and fields[2] == b"s"

        def _load_lemma_pos_offset_map(self):
            self._lemma_pos_offset_map = LazyIndex(self)

        def _load_all(self):
            """Everything, the nltk way (for callers that iterate over all lemmas)."""
            index = self._lemma_pos_offset_map
            self._lemma_pos_offset_map = defaultdict(dict)
            WordNetCorpusReader._scan_satellites(self)
            WordNetCorpusReader._load_lemma_pos_offset_map(self)
            dict.update(index, self._lemma_pos_offset_map)
            self._lemma_pos_offset_map = index

        def map_wn(self, version="wordnet"):
            return None

    return FastLoadWordNet


def _find_root(nltk):
    """Where nltk finds its `wordnet` corpus (a folder, or inside wordnet.zip), as its
    LazyCorpusLoader looks for it."""
    try:
        return nltk.data.find("corpora/wordnet.zip/wordnet/")
    except LookupError:
        return nltk.data.find("corpora/wordnet")


def wordnet(source: Path | None = None):
    """nltk's WordNet reader, prepared from local files on first use (`source`: where
    Debian's files are, DEBIAN_WORDNET unless given)."""
    global _READY
    if _READY is None:
        import nltk

        try:
            root = _find_root(nltk)
        except LookupError:
            data = prepare_from_debian(source or DEBIAN_WORDNET)
            if str(data) not in nltk.data.path:
                nltk.data.path.insert(0, str(data))
            root = _find_root(nltk)
        with warnings.catch_warnings():  # "multilingual functions are not available": not used here
            warnings.simplefilter("ignore")
            _READY = _reader_class()(root, None)
    return _READY


def prepare_from_debian(source: Path = DEBIAN_WORDNET) -> Path:
    """Copy Debian's WordNet files into <cache>/nltk_data/corpora/wordnet (atomically)."""
    data = cache_root() / "nltk_data"
    target = data / "corpora" / "wordnet"
    if (target / "lexnames").is_file():
        return data
    missing = [f for f in NEEDED if not (source / f).is_file()]
    if missing:
        raise UserError(
            "WordNet not found (needed by synonym replacement): install Debian's wordnet-base "
            "(apt-get install wordnet-base) or NLTK's corpus (python -m nltk.downloader wordnet)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".wordnet."))
    for f in sorted(p.name for p in source.iterdir() if p.is_file()):
        shutil.copyfile(source / f, tmp / f)
    (tmp / "lexnames").write_text(lexnames_text())
    try:
        os.rename(tmp, target)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return data
