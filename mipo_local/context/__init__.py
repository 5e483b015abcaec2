"""The user's context: import of notes, vaults and email into a local SQLite store, and retrieval."""

from .importer import ImportSummary, import_paths, suggest_user_addresses
from .store import ContextStore, SearchHit, SourceInfo

__all__ = ["ContextStore", "ImportSummary", "SearchHit", "SourceInfo", "import_paths", "suggest_user_addresses"]
