"""The index's tables as SQLAlchemy 2 typed models.

Table and column names are a contract (the API, the GUI and the acceptance checks use them); the
schema changes only through the Alembic migrations in :mod:`landscape.index.migrations`, and a
test checks that the migrations produce exactly these models.

Every fact has a source and a time: a file row knows when it was first and last seen, a
prediction which model made it and when. Timestamps are stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .sniff import MediaType

__all__ = [
    "FILE_STATUSES",
    "MEDIA_TYPES",
    "ROLES",
    "SCAN_STATES",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Correction",
    "Embedding",
    "File",
    "FileStatus",
    "MediaMetadata",
    "MediaType",
    "Model",
    "ModelActivation",
    "Prediction",
    "Root",
    "Scan",
    "ScanState",
    "User",
    "utcnow",
]

FileStatus = Literal["ok", "error", "missing", "quarantined"]
ScanState = Literal["running", "finished", "failed"]
Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
MEDIA_TYPES: tuple[str, ...] = get_args(MediaType)
FILE_STATUSES: tuple[str, ...] = get_args(FileStatus)
SCAN_STATES: tuple[str, ...] = get_args(ScanState)

# Deterministic constraint names: migrations can drop and alter them on SQLite and PostgreSQL.
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, in UTC (timezone-aware)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention and JSON for dict/list columns."""

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


_TS = DateTime(timezone=True)


class Root(Base):
    """A storage root given to ``landscape index`` (an absolute, resolved folder)."""

    __tablename__ = "roots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    last_scan_at: Mapped[datetime | None] = mapped_column(_TS)
    file_count: Mapped[int] = mapped_column(Integer, default=0)

    files: Mapped[list[File]] = relationship(back_populates="root")


class File(Base):
    """One file under a root, whatever it holds; ``status`` says whether it could be used."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("root_id", "relative_path"),
        Index(None, "content_hash"),
        Index(None, "status", "media_type"),
        Index(None, "taken_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id", ondelete="CASCADE"))
    relative_path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(8), default="other")
    mime: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(12), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(_TS)
    #: what "newest first" and date filters use: the capture time (the camera's wall clock)
    #: when the file has one, else its modification time in UTC; both naive
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    #: 64-bit perceptual hash (signed) of the picture, a video's middle sampled frame
    phash: Mapped[int | None] = mapped_column(BigInteger)

    root: Mapped[Root] = relationship(back_populates="files")
    media: Mapped[MediaMetadata | None] = relationship(
        back_populates="file", cascade="all, delete-orphan"
    )
    predictions: Mapped[list[Prediction]] = relationship(
        back_populates="file", cascade="all, delete-orphan"
    )


class MediaMetadata(Base):
    """What the file says about itself: dimensions, EXIF, GPS (decimal degrees) and place."""

    __tablename__ = "media_metadata"
    __table_args__ = (
        Index(None, "captured_at"),
        Index(None, "latitude", "longitude"),
        Index(None, "camera_model"),
    )

    file_id: Mapped[int] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str | None] = mapped_column(String(16))
    # The camera's local wall-clock time (what "taken on" filters compare with), and its offset
    # from UTC in minutes when the camera recorded one (EXIF OffsetTimeOriginal).
    captured_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    captured_offset: Mapped[int | None] = mapped_column(Integer)
    camera_make: Mapped[str | None] = mapped_column(String(128))
    camera_model: Mapped[str | None] = mapped_column(String(128))
    lens: Mapped[str | None] = mapped_column(String(128))
    exposure_time: Mapped[float | None] = mapped_column(Float)
    f_number: Mapped[float | None] = mapped_column(Float)
    iso: Mapped[int | None] = mapped_column(Integer)
    focal_length: Mapped[float | None] = mapped_column(Float)
    orientation: Mapped[int | None] = mapped_column(Integer)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    altitude: Mapped[float | None] = mapped_column(Float)
    # A video's facts (None for an image): seconds, average and real frame rates, codecs,
    # clockwise display rotation in degrees, bits per second, declared frame count.
    duration: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    fps_real: Mapped[float | None] = mapped_column(Float)
    variable_frame_rate: Mapped[bool | None] = mapped_column(Boolean)
    video_codec: Mapped[str | None] = mapped_column(String(32))
    video_profile: Mapped[str | None] = mapped_column(String(64))
    rotation: Mapped[int | None] = mapped_column(Integer)
    bit_rate: Mapped[int | None] = mapped_column(BigInteger)
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    frame_count: Mapped[int | None] = mapped_column(Integer)
    place_country: Mapped[str | None] = mapped_column(String(128))
    place_region: Mapped[str | None] = mapped_column(String(128))
    place_city: Mapped[str | None] = mapped_column(String(128))
    exif: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    file: Mapped[File] = relationship(back_populates="media")


class Model(Base):
    """A model bundle the index has used; one is ``active`` (the default of ``index``)."""

    __tablename__ = "models"

    model_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(256))
    backbone: Mapped[str | None] = mapped_column(String(64))
    classes: Mapped[list[Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    bundle_path: Mapped[str] = mapped_column(Text)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime | None] = mapped_column(_TS)
    registered_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the fingerprint of the dataset the bundle was trained on (its bundle.json)
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))


class Prediction(Base):
    """One label of a file under a model: ``segment`` 0 is the whole file (a still image; for a
    video its dominant label, over ``0``–duration), ``segment`` 1…n a video's timeline in order,
    with ``segment_start``/``segment_end`` in seconds and a ``keyframe`` picture.

    Search shows segment 0 and matches a label against any segment. ``segment`` is a number
    rather than the start time in the unique key because SQL treats NULLs as distinct: a still
    image would otherwise be allowed two rows per model.
    """

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("file_id", "model_id", "segment"),
        Index(None, "model_id", "label", "confidence"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id"))
    segment: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[str] = mapped_column(String(128))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    is_unknown: Mapped[bool] = mapped_column(Boolean, default=False)
    segment_start: Mapped[float | None] = mapped_column(Float)
    segment_end: Mapped[float | None] = mapped_column(Float)
    #: a small JPEG of the segment's most typical frame, relative to the keyframe folder
    keyframe: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)

    file: Mapped[File] = relationship(back_populates="predictions")
    embedding: Mapped[Embedding | None] = relationship(
        back_populates="prediction", cascade="all, delete-orphan"
    )


class Embedding(Base):
    """The pooled feature vector behind a prediction (float16 bytes), for similarity search."""

    __tablename__ = "embeddings"

    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    prediction: Mapped[Prediction] = relationship(back_populates="embedding")


class Scan(Base):
    """One run of ``landscape index``: what it covered, what it did, whether it finished."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    roots: Mapped[list[Any]] = mapped_column(JSON)
    model_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(_TS)
    state: Mapped[str] = mapped_column(String(12), default="running")
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class User(Base):
    """A person (or a script) who may use the service: ``viewer`` reads, ``analyst`` also
    uploads and corrects, ``admin`` also manages users and models. The password is stored only
    as its Argon2 hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(_TS)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class ApiToken(Base):
    """An API token of a user: stored only as its SHA-256 (the token itself is shown once),
    with a scope (``read``, ``write``, ``admin``) and an expiry."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(_TS)
    last_used_at: Mapped[datetime | None] = mapped_column(_TS)

    user: Mapped[User] = relationship(back_populates="tokens")


class Correction(Base):
    """A person's label for a file (or a video segment), against the prediction of
    ``model_id`` it reviews; a label equal to the model's is a confirmation. The newest
    correction of a file is its reviewed label; older ones stay as its history."""

    __tablename__ = "corrections"
    __table_args__ = (Index(None, "file_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    segment: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[str] = mapped_column(String(128))
    previous_label: Mapped[str | None] = mapped_column(String(128))
    model_id: Mapped[str | None] = mapped_column(String(64))
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    user_name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)


class AuditEntry(Base):
    """Who changed what and when: labels, models, users, tokens, uploads."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(_TS, default=utcnow, index=True)
    user_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ModelActivation(Base):
    """One activation of a model (``registry activate``, ``promote``, ``rollback``): the
    history a rollback walks back through, and who did it."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.model_id", ondelete="CASCADE"))
    activated_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    user_name: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(32))


class Job(Base):
    """A background job of the service (``retrain``, ``reclassify``): the CLI command it runs
    in a process of its own, its state, the tail of its log and its result.

    At most one job of a kind runs at a time: a partial unique index on ``kind`` over the rows
    in state ``running`` makes a second start fail in the database, even from two processes.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index(
            "ux_jobs_running_kind",
            "kind",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(12), default="running")
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    log_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(_TS, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(_TS)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    log_tail: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
