"""nltk's WordNetCorpusReader without its load-time costs (wordnet.py says which and why).
Imported only when synonym replacement first needs WordNet: importing nltk touches
Python's global random state (shift/texts.py imports it early, on purpose)."""

from __future__ import annotations

import io
from collections import defaultdict

from nltk.corpus.reader.wordnet import ADJ, ADJ_SAT, WordNetCorpusReader, WordNetError


def find_line(data: bytes, key: bytes) -> bytes | None:
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

    def _lookup(self, lemma: str) -> dict:
        entry: dict = {}
        key = lemma.encode("utf-8")
        if not key or any(c in key for c in b" \t\n\r"):
            return entry  # never an index key
        for pos, suffix in self.reader._FILEMAP.items():
            line = find_line(self._index(pos), key)
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
