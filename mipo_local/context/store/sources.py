"""The sources the user imported (folders, vaults, mailboxes) and the profiles made of them: adding,
listing, finding and removing a source (with everything imported from it), and a profile's own
subset of the sources."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ...errors import MipoError
from ..text import fs_text
from .base import StoreBase, _now


@dataclass(frozen=True)
class SourceInfo:
    id: int
    path: str
    kind: str
    added_at: str
    imported_at: Optional[str]
    files: int
    documents: int


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    created_at: str
    sources: tuple[SourceInfo, ...]

    @property
    def source_ids(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.sources)



class SourcesStore(StoreBase):
    """Sources and profiles (removing a source also moves its copies of emails other files hold,
    relinks replies and forgets the evaluation cache: `DocumentsStore`, `EvalCacheStore`)."""

    # -------------------------------------------------------------------------------- sources
    def add_source(self, path: str, kind: str) -> int:
        row = self.db.execute("SELECT id FROM sources WHERE path = ?", (path,)).fetchone()
        if row:
            return row["id"]
        with self.transaction():     # another process may be adding the same source right now
            self.db.execute("INSERT OR IGNORE INTO sources(path, kind, added_at) VALUES (?, ?, ?)", (path, kind, _now()))
            return self.db.execute("SELECT id FROM sources WHERE path = ?", (path,)).fetchone()["id"]

    def mark_imported(self, source_id: int) -> None:
        self.db.execute("UPDATE sources SET imported_at = ? WHERE id = ?", (_now(), source_id))

    def sources(self) -> list[SourceInfo]:
        rows = self.db.execute(
            """SELECT s.*, (SELECT COUNT(*) FROM files f WHERE f.source_id = s.id) AS n_files,
                      (SELECT COUNT(*) FROM documents d JOIN files f ON d.file_id = f.id WHERE f.source_id = s.id) AS n_docs
               FROM sources s ORDER BY s.id"""
        ).fetchall()
        return [SourceInfo(r["id"], r["path"], r["kind"], r["added_at"], r["imported_at"], r["n_files"], r["n_docs"]) for r in rows]

    def find_source(self, path_or_id: str) -> SourceInfo:
        for source in self.sources():
            if path_or_id == str(source.id) or path_or_id == source.path or \
                    fs_text(str(Path(path_or_id).expanduser().resolve())) == source.path:
                return source
        raise MipoError(f"no imported source {path_or_id!r}; `mipo-local context --list` shows them")

    def remove_source(self, path_or_id: str) -> SourceInfo:
        """Forget a source and everything imported from it (the user's files are not touched)."""
        source = self.find_source(path_or_id)
        with self.transaction():
            self._keep_duplicates("f.source_id = ?", (source.id,))
            self.db.execute("DELETE FROM sources WHERE id = ?", (source.id,))
            self._relink_replies()
            self._forget_eval_cache()
        return source

    # ------------------------------------------------------------------------------- profiles
    def create_profile(self, name: str, source_ids: Sequence[int]) -> "ProfileInfo":
        """A new profile over these sources (ids of imported sources)."""
        with self.transaction():
            if self.db.execute("SELECT 1 FROM profiles WHERE name = ?", (name,)).fetchone():
                raise MipoError(f"there is a profile {name!r} already; remove it first (`mipo-local profile --remove {name}`)")
            profile_id = self.db.execute("INSERT INTO profiles(name, created_at) VALUES (?, ?)", (name, _now())).lastrowid
            for source_id in dict.fromkeys(source_ids):
                self.db.execute("INSERT INTO profile_sources(profile_id, source_id) VALUES (?, ?)", (profile_id, source_id))
        return self.profile(name)

    def profiles(self) -> list["ProfileInfo"]:
        """Every profile with its sources (a source removed since is no longer among them)."""
        sources = {s.id: s for s in self.sources()}
        members: dict[int, list[SourceInfo]] = {}
        for profile_id, source_id in self.db.execute("SELECT profile_id, source_id FROM profile_sources ORDER BY source_id"):
            if source_id in sources:
                members.setdefault(profile_id, []).append(sources[source_id])
        return [ProfileInfo(r["name"], r["created_at"], tuple(members.get(r["id"], ())))
                for r in self.db.execute("SELECT * FROM profiles ORDER BY name")]

    def profile(self, name: str) -> "ProfileInfo":
        for profile in self.profiles():
            if profile.name == name:
                return profile
        raise MipoError(f"no profile {name!r}; `mipo-local profile --list` shows them")

    def remove_profile(self, name: str) -> "ProfileInfo":
        """Forget a profile (its sources, runs and models stay)."""
        profile = self.profile(name)
        with self.transaction():
            self.db.execute("DELETE FROM profiles WHERE name = ?", (name,))
        return profile
