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

import os
import shutil
import tempfile
import warnings
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
    from emidbench.shift.text.fast_wordnet import FastLoadWordNet

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
