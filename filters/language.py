"""Language mixing: R1's language-consistency measure, the proportion of target-language words in a text.

R1 (DeepSeek-AI 2025, §2.3.2) rewards the proportion of target-language words in the chain of thought during RL and
drops chains of thought with mixed languages from its SFT data (§2.3.3). `language_consistency(text, target)` is that
proportion, usable as a GRPO reward as is; `language(candidate, cfg, target)` stores it as `language_consistency`
and drops the candidate below a threshold (reason `language_mixing`). Both measure the reasoning (the text inside
<think>...</think>) as R1 does; `scope: completion` measures reasoning and summary together, and a text with no closed
think block (a model that does not reason in tags) is measured whole.

What counts as a word: LaTeX, code (fenced and inline, and the Asymptote of MATH's `[asy]` figures, whose
`draw cycle black linewidth` is Welsh to langdetect), URLs, tags, numbers and identifiers (`x1`, `snake_case`,
`camelCase`, `np.linalg`) are skipped. A word is a run of two or more letters, or one Han or kana character (Chinese
and Japanese have no spaces: word processors count each such character as a word). Single letters are skipped:
outside LaTeX they are variables (x, n, α). The script of each word comes from its Unicode character name.

- Words in a script the target does not use are foreign (Han in English, Cyrillic in Chinese, kana in Chinese).
- Latin words in a target not written in Latin (zh, ja, ru, ...) are terms (sin, GCD, Vieta's formulas, variable
  names) in runs of at most `max_term_words` between target-script words; a longer run is a foreign phrase.
- Where several languages share the target's script (English and French, Russian and Ukrainian), langdetect judges
  the words, coarse to fine: paragraphs (lines; short ones joined up to `chunk_words` words), then the lines of a
  chunk the target does not get `chunk_confidence` for, then the sentences of such a line. A part with fewer than
  `min_detect_words` distinct words is not judged on its own (langdetect guesses on a few words): it goes with the
  part around it, and at the top level it counts as target. Distinct, because math text with its LaTeX skipped
  leaves a few words repeated line after line, and a repeat adds no evidence: twenty lines `(so 7 is not a divisor)`
  are `so is not divisor` twenty times, Italian to langdetect. `langdetect-rs` gives langdetect's exact
  probabilities ~60 times faster; detection is seeded, so a score never changes between runs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from filters.answer import split_think
from filters.base import Candidate, Verdict, accept, reject


@dataclass
class LanguageConfig:
    """A recipe's `language:` section."""

    target: str = "en"  # ISO 639-1 code, used when the record has no `language` of its own
    # R1 gives no number. 0.95 allows one word in twenty to be foreign: a quotation or a foreign term stays above it
    # (0.95-0.98 in data/labelled/language_cases.jsonl), a foreign paragraph in a short trace does not (0.94 and
    # below); in a 4k-token trace one foreign paragraph is a few percent of the words and is kept
    threshold: float = 0.95
    scope: str = "reasoning"  # what is measured: "reasoning" (R1's chain of thought) or "completion" (with the summary)
    min_words: int = 20  # fewer words than this (a bare formula, a one-line answer) are too few to judge: kept
    detector: str = "langdetect_rs"  # or "langdetect" (the pure-Python original, ~60x slower), or "script" (none)
    # langdetect judges a paragraph (line) at a time, short ones joined until they have this many words: one call
    # (~30 µs) per paragraph. Larger chunks are cheaper but unreliable: a paragraph of German and one of English
    # together come out as German with probability 1.0
    chunk_words: int = 20
    # a chunk or line the target gets at least this probability for is all target; otherwise its lines, then its
    # sentences, are judged on their own (langdetect gives clean text 0.99999)
    chunk_confidence: float = 0.99
    min_detect_words: int = 6  # under ~6 distinct words langdetect guesses ("Let x be" Dutch, "sin cos GCD" Spanish)
    max_term_words: int = 4  # "Chinese Remainder Theorem" in a Chinese trace is a term, a five-word run is not
    seed: int = 0

    def __post_init__(self):
        if self.scope not in SCOPES:
            raise ValueError(f"scope {self.scope!r} is not one of {', '.join(SCOPES)}")

    def measured(self, text: str) -> str:
        """The part of a completion this config measures: its reasoning, unless scope is the whole completion."""
        if self.scope == "reasoning":
            reasoning, _ = split_think(text)
            if reasoning is not None:
                return reasoning
        return text


SCOPES = ("reasoning", "completion")

# the scripts of the languages langdetect knows (ISO 639-1); Japanese is written in Han and kana together
_LATIN = "af ca cs cy da de en es et fi fr hr hu id it lt lv nl no pl pt ro sk sl so sq sv sw tl tr vi"
_OTHERS = {
    "zh": "HAN",
    "ja": "HAN KANA",
    "ko": "HANGUL",
    "ru": "CYRILLIC",
    "uk": "CYRILLIC",
    "bg": "CYRILLIC",
    "mk": "CYRILLIC",
    "ar": "ARABIC",
    "fa": "ARABIC",
    "ur": "ARABIC",
    "hi": "DEVANAGARI",
    "mr": "DEVANAGARI",
    "ne": "DEVANAGARI",
    "el": "GREEK",
    "he": "HEBREW",
    "th": "THAI",
    "bn": "BENGALI",
    "gu": "GUJARATI",
    "pa": "GURMUKHI",
    "ta": "TAMIL",
    "te": "TELUGU",
    "kn": "KANNADA",
    "ml": "MALAYALAM",
}
LANGUAGE_SCRIPTS = {lang: ("LATIN",) for lang in _LATIN.split()} | {k: tuple(v.split()) for k, v in _OTHERS.items()}
SHARED_SCRIPTS = ("LATIN", "CYRILLIC", "ARABIC", "DEVANAGARI")  # scripts langdetect must tell languages apart in
# languages langdetect confuses on a sentence or two (Spanish read as Portuguese, Russian as Bulgarian)
_GROUPS = ["es pt ca it ro fr", "ru uk bg mk", "cs sk pl hr sl", "da no sv", "nl af", "hi mr ne", "ar fa ur", "id tl"]
RELATIVES = {lang: i for i, group in enumerate(_GROUPS) for lang in group.split()}

_CJK = "\u3005\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_W = rf"[^\W{_CJK}{_HANGUL}]"  # a word character (digits and _ included: identifiers are one token, then skipped)
_ABUGIDAS = "\u0900-\u0dff\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"  # Indic, Thai, Lao, Myanmar, Khmer: words with marks
_TOKENS = re.compile(  # one pass: what is skipped (code, URLs, LaTeX, tags), words, and sentence and line breaks
    r"```.*?(?:```|\Z)|`[^`\n]*`|\[asy\].*?(?:\[/asy\]|\Z)|https?://\S+|www\.\S+|</?[a-z]+>"
    r"|\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\\begin\{[A-Za-z]+\*?\}.*?\\end\{[A-Za-z]+\*?\}|\$[^$\n]+\$|\\[A-Za-z]+"
    rf"|[{_CJK}]|[{_HANGUL}]+|[{_ABUGIDAS}]+|{_W}+(?:\.{_W}+)*|[.!?;。！？；\n]",
    re.S,
)
_BREAKS = frozenset(".!?;。！？；\n")
_SINGLE = frozenset({"HAN", "KANA", "HANGUL"})  # scripts where one character is a word
_MARKED = frozenset(  # scripts whose words carry combining vowel signs (not isalpha)
    ["DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM"]
    + ["SINHALA", "THAI", "LAO", "MYANMAR", "KHMER"]
)
_DIGIT = re.compile(r"\d")


class _Scripts(dict):
    """First character of a word -> its script, from the Unicode name ("CJK UNIFIED IDEOGRAPH-4E00" -> HAN)."""

    def __missing__(self, ch: str) -> str:
        words = unicodedata.name(ch, "UNKNOWN").split()
        script = words[1] if words[0] in ("FULLWIDTH", "HALFWIDTH") and len(words) > 1 else words[0]
        script = script.split("-")[0]  # KATAKANA-HIRAGANA PROLONGED SOUND MARK
        script = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "HIRAGANA": "KANA", "KATAKANA": "KANA"}.get(script, script)
        self[ch] = script
        return script


_SCRIPT_OF = _Scripts()


def normalize(lang: str) -> str:
    """'zh-CN', 'pt_BR', 'EN' -> 'zh', 'pt', 'en'; an unknown code is an error that lists the known ones."""
    code = lang.strip().lower().replace("_", "-").split("-")[0]
    code = {"nb": "no", "nn": "no"}.get(code, code)
    if code not in LANGUAGE_SCRIPTS:
        raise ValueError(f"language {lang!r} is not one of {', '.join(sorted(LANGUAGE_SCRIPTS))}")
    return code


def language_consistency(text: str, target: str = "en", cfg: LanguageConfig | None = None) -> float:
    """The proportion of `target`-language words in `text`'s reasoning (1.0 when it has no words): R1's reward."""
    cfg = cfg or LanguageConfig()
    words, foreign = count_words(cfg.measured(text), target, cfg)
    return 1.0 if words == 0 else 1.0 - foreign / words


def language(c: Candidate, cfg: LanguageConfig | None = None, target: str | None = None) -> Verdict:
    """Drop a completion whose reasoning's share of target-language words is under the threshold."""
    cfg = cfg or LanguageConfig()
    words, foreign = count_words(cfg.measured(c.text) if c.think else c.text, target or cfg.target, cfg)
    score = 1.0 if words == 0 else round(1.0 - foreign / words, 4)
    if words >= cfg.min_words and score < cfg.threshold:
        return reject("language_mixing", language_consistency=score)
    return accept(language_consistency=score)


def count_words(text: str, target: str, cfg: LanguageConfig) -> tuple[int, int]:
    """(words, foreign words) in `text` for the `target` language."""
    lang = normalize(target)
    scripts = LANGUAGE_SCRIPTS[lang]
    shared = next((s for s in scripts if s in SHARED_SCRIPTS), None) if cfg.detector != "script" else None
    total = own = terms = run = 0
    lines, sentence, line = [], [], []  # the shared-script words, by line and sentence, for langdetect
    for tok in _TOKENS.findall(text):
        if tok in _BREAKS:
            if sentence:
                line.append(sentence)
                sentence = []
            if tok == "\n":
                terms += run if run <= cfg.max_term_words else 0
                run = 0
                if line:
                    lines.append(line)
                    line = []
            continue
        script = _SCRIPT_OF[tok[0]]
        if not tok.isalpha() and (script not in _MARKED or _DIGIT.search(tok)):  # code, LaTeX, URLs, numbers, x1
            continue
        if len(tok) == 1 and script not in _SINGLE:
            continue
        if not (tok.islower() or tok.istitle() or tok.isupper() or not tok.isascii()):  # camelCase
            continue
        total += 1
        if script in scripts:
            own += 1
            terms += run if run <= cfg.max_term_words else 0
            run = 0
            if script == shared:
                sentence.append(tok)
        elif script == "LATIN":
            run += 1
    terms += run if run <= cfg.max_term_words else 0
    if sentence:
        line.append(sentence)
    if line:
        lines.append(line)
    foreign = total - own - (terms if "LATIN" not in scripts else 0)
    if shared and own >= cfg.min_detect_words:
        foreign += _Judge(lang, cfg, lines).foreign_words()
    return total, min(foreign, total)


class _Judge:
    """langdetect's verdicts on the chunks, lines and sentences of one text, for one target language.

    langdetect confuses close relatives on a sentence or two, and a model that drifts into a relative of its target
    does so for the whole text: so a part given to a relative of the target is foreign only if the whole text is
    given to a language other than the target.
    """

    def __init__(self, lang: str, cfg: LanguageConfig, lines: list[list[list[str]]]):
        self.lang, self.cfg, self.lines, self._whole = lang, cfg, lines, ""

    def foreign_words(self) -> int:
        chunks, chunk, size = [], [], 0
        for line in self.lines:  # whole lines, so that a chunk rarely holds two languages
            chunk.append(line)
            size += sum(map(len, line))
            if size >= self.cfg.chunk_words:
                chunks.append(chunk)
                chunk, size = [], 0
        chunks.append(chunk)
        return sum(self._part(chunk, 2, False) for chunk in chunks)

    def _part(self, part: list, depth: int, inherited: bool) -> int:
        """Foreign words in a chunk (depth 2: lines of sentences), a line (1: sentences) or a sentence (0: words)."""
        words = part
        for _ in range(depth):
            words = [w for sub in words for w in sub]
        if len(set(words)) < self.cfg.min_detect_words:
            return len(words) if inherited else 0
        probs = _probabilities(" ".join(words), self.cfg.detector, self.cfg.seed)
        if not probs or probs.get(self.lang, 0.0) >= self.cfg.chunk_confidence:
            return 0
        foreign = self._foreign(max(probs, key=probs.get))
        if depth == 0 or len(part) == 1 and depth == 1:
            return len(words) if foreign else 0
        if len(part) == 1:  # a chunk of one line: go to its sentences
            return self._part(part[0], depth - 1, foreign)
        return sum(self._part(sub, depth - 1, foreign) for sub in part)

    def _foreign(self, top: str) -> bool:
        if top == self.lang:
            return False
        if RELATIVES.get(top, top) != RELATIVES.get(self.lang, self.lang):
            return True
        if self._whole == "":
            words = [w for line in self.lines for s in line for w in s][:500]
            probs = _probabilities(" ".join(words), self.cfg.detector, self.cfg.seed)
            self._whole = max(probs, key=probs.get) if probs else self.lang
        return self._whole != self.lang


@lru_cache(maxsize=4096)
def _probabilities(text: str, detector: str, seed: int) -> dict[str, float]:
    """langdetect's probabilities by language (zh-cn and zh-tw as zh); empty when it finds no features."""
    module = _detector(detector)
    module.DetectorFactory.seed = seed
    try:
        found = module.detect_langs(text)
    except module.LangDetectException:
        return {}
    probs: dict[str, float] = {}
    for item in found:
        code = item.lang.split("-")[0]
        probs[code] = probs.get(code, 0.0) + item.prob
    return probs


@lru_cache(maxsize=2)
def _detector(name: str):
    if name not in ("langdetect_rs", "langdetect"):
        raise ValueError(f"language detector {name!r} is not one of langdetect_rs, langdetect, script")
    try:
        return __import__(name)
    except ImportError:
        package = name.replace("_", "-")
        raise ImportError(f"the language filter's detector {name!r} needs `pip install {package}`") from None
