"""DocumentHandlers: docedit's channel of one hub — ``docedit:<doc>`` (the Yjs sync and awareness protocols in
the envelope, document and version management) and ``docedit:@index`` (the list of documents), with their
snapshots."""

from __future__ import annotations

import time

from hub import Channel, Context, HubError, RateLimit
from hub_realtime_plugins.docedit.documents import Documents
from hub_realtime_plugins.docedit.ids import (
    CREATE_SCOPE,
    INDEX_ROOM,
    NAMESPACE,
    Role,
    is_doc_id,
    may_create,
    no_document,
    sortable_id,
)
from hub_realtime_plugins.docedit.messages import (
    MAX_AWARENESS_BYTES,
    Applied,
    AwarenessChanged,
    CreateDocument,
    DeleteDocument,
    DocList,
    DocMeta,
    DocSnapshot,
    DocumentDeleted,
    Empty,
    GetVersion,
    IndexChanged,
    ListDocuments,
    ListVersions,
    MetaChanged,
    Partial,
    Person,
    RenameDocument,
    RestoreVersion,
    SaveVersion,
    ShareAwareness,
    ShareDocument,
    SyncDocument,
    SyncStep2,
    UpdateApplied,
    Version,
    VersionList,
    VersionRestored,
    VersionSaved,
    VersionState,
)
from hub_realtime_plugins.docedit.opendoc import OpenDoc, restore_update
from hub_realtime_plugins.docedit.settings import DoceditSettings
from hub_realtime_plugins.docedit.yprotocol import (
    EMPTY_UPDATE,
    ProtocolError,
    SyncKind,
    b64decode,
    b64encode,
    parse_awareness,
    parse_sync,
    step1,
    step2,
)

INDEX_LIMIT = 200  # documents in the @index snapshot and the docedit.list reply
_FEW = RateLimit(rate=2, burst=5)  # create, rename, share, delete, versions
_READS = RateLimit(rate=5, burst=20)  # listing documents and versions


def doc_room(room: str) -> str:
    """The document id a room names; every ``@`` room but @index is not found."""
    if room == INDEX_ROOM:
        raise HubError("bad_request", "Only docedit.list is accepted on 'docedit:@index'.")
    if room.startswith("@"):
        raise HubError("not_found", f"There is no 'docedit:{room}'.")
    if not is_doc_id(room):
        raise HubError("bad_channel", "Document ids are 1 to 64 letters, digits and _ . = + -.")
    return room


def _author(ctx: Context) -> Person:
    return Person(user=ctx.identity.user, name=ctx.identity.name)


def creation_refused(settings: DoceditSettings) -> str:
    who = {"users": "signed-in users", "scope": f"tokens with the {CREATE_SCOPE!r} scope"}.get(settings.create)
    return f"Only {who} may create documents on this hub." if who else "This hub does not create documents."


class DocumentHandlers:
    """The channel ``docedit:*`` of one hub: its access rule, snapshot and handlers, bound to its documents."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents
        self.settings = settings = documents.settings
        self.channel = channel = Channel(
            NAMESPACE,
            description="Collaborative documents (Yjs CRDTs): sync, awareness, sharing, versions; @index lists them.",
            presence=True,
        )
        for event_type, model in (
            ("docedit.update", UpdateApplied),
            ("docedit.awareness", AwarenessChanged),
            ("docedit.meta", MetaChanged),
            ("docedit.deleted", DocumentDeleted),
            ("docedit.version_saved", VersionSaved),
            ("docedit.restored", VersionRestored),
            ("docedit.index_changed", IndexChanged),
        ):
            channel.event(event_type, model)
        channel.authorize(self.admit)
        channel.snapshot(self.snapshot)
        channel.on("docedit.sync", SyncDocument, rate_limit=RateLimit(settings.sync_rate, settings.sync_burst))(
            self.sync
        )
        channel.on(
            "docedit.awareness",
            ShareAwareness,
            rate_limit=RateLimit(settings.awareness_rate, settings.awareness_burst),
        )(self.awareness)
        channel.on("docedit.create", CreateDocument, rate_limit=_FEW)(self.create)
        channel.on("docedit.rename", RenameDocument, rate_limit=_FEW)(self.rename)
        channel.on("docedit.share", ShareDocument, rate_limit=_FEW)(self.share)
        channel.on("docedit.delete", DeleteDocument, rate_limit=_FEW)(self.delete)
        channel.on("docedit.save_version", SaveVersion, rate_limit=_FEW)(self.save_version)
        channel.on("docedit.versions", ListVersions, rate_limit=_READS)(self.versions)
        channel.on("docedit.get_version", GetVersion, rate_limit=_READS)(self.get_version)
        channel.on("docedit.restore", RestoreVersion, rate_limit=_FEW)(self.restore)
        channel.on("docedit.list", ListDocuments, rate_limit=_READS)(self.list_documents)

    async def open_doc(self, ctx: Context, need: Role) -> tuple[OpenDoc, Role]:
        """The document of ``ctx``'s channel and the caller's role; not_found without one (the same answer as for
        a missing document), forbidden below ``need``."""
        doc_id = doc_room(ctx.room)
        od = await self.documents.open(doc_id)
        role = od.role(ctx.identity.user) if od is not None else Role.NONE
        if od is None or role is Role.NONE:
            raise HubError("not_found", no_document(doc_id))
        if role < need:
            raise HubError(
                "forbidden", f"Only a document's {need.label}s and above may do this; you are a {role.label}."
            )
        return od, role

    async def admit(self, ctx: Context, action: str, message_type: str | None) -> None:
        """Run before presence, snapshot and handlers: a caller without a role in the document gets the answer
        a missing document gets, and nobody sees it come and go. A ``sub`` of a missing document creates it
        here (auto-create), so the subscriber is its owner before anything else happens."""
        if ctx.room == INDEX_ROOM:
            return  # the index lists each caller's own documents
        settings = self.settings
        doc_id = doc_room(ctx.room)
        if message_type == "docedit.create":
            if not may_create(settings.create, ctx.identity):
                raise HubError("forbidden", creation_refused(settings))
            return  # the handler answers conflict for a name that is taken
        documents = self.documents
        od = await documents.open(doc_id)
        if od is None and action == "subscribe" and settings.auto_create and may_create(settings.create, ctx.identity):
            await documents.create(doc_id, ctx.identity, doc_id, settings.default_access)
            od = await documents.open(doc_id)  # ours, or the one a concurrent subscriber created
        if od is None or od.role(ctx.identity.user) is Role.NONE:
            raise HubError("not_found", no_document(doc_id))

    async def snapshot(self, ctx: Context) -> DocSnapshot | DocList:
        if ctx.room == INDEX_ROOM:
            return DocList(docs=await self.documents.listing(ctx.identity.user, INDEX_LIMIT))
        od, role = await self.open_doc(ctx, Role.READER)  # admit checked it; the document may be gone since
        awareness = od.awareness.encode()
        meta = od.meta.model_copy(update={"size": od.measure()})
        return DocSnapshot(
            doc=meta,
            role=role.label,  # NONE was refused above
            step1=b64encode(step1(od.ydoc.get_state())),
            awareness=b64encode(awareness) if awareness is not None else None,
            awareness_owners=od.awareness.owners(),
        )

    async def sync(self, ctx: Context, msg: SyncDocument) -> SyncStep2 | Applied | Partial:
        od, role = await self.open_doc(ctx, Role.READER)
        text = msg.m
        if msg.part is not None:
            part = msg.part
            whole = self.documents.parts.add(
                ctx.client_id, od.doc_id, part.id, part.index, part.count, msg.m, time.monotonic()
            )
            if whole is None:
                return Partial()
            text = whole
        try:
            message = parse_sync(b64decode(text))
        except ProtocolError as exc:
            raise HubError("invalid", f"docedit.sync: {exc}.") from None
        if message.kind is SyncKind.STEP1:
            try:
                missing = od.ydoc.get_update(message.payload)
            except ValueError:
                raise HubError("invalid", "docedit.sync: step 1 does not carry a state vector.") from None
            return SyncStep2(m=b64encode(step2(missing)))
        if message.payload == EMPTY_UPDATE:
            return Applied()
        if role < Role.EDITOR:
            self.documents.rejected += 1
            raise HubError("forbidden", f"{ctx.identity.name} may only read document {od.doc_id!r}.")
        await self.documents.apply(od, message.payload, client=ctx.client_id)
        return Applied()

    async def awareness(self, ctx: Context, msg: ShareAwareness) -> None:
        od, _role = await self.open_doc(ctx, Role.READER)
        try:
            data = b64decode(msg.m)
            if len(data) > MAX_AWARENESS_BYTES:
                raise ProtocolError(f"an awareness update is at most {MAX_AWARENESS_BYTES} bytes")
            entries = parse_awareness(data)
        except ProtocolError as exc:
            raise HubError("invalid", f"docedit.awareness: {exc}.") from None
        od.awareness.apply(entries, ctx.client_id, time.monotonic())
        await ctx.publish("docedit.awareness", AwarenessChanged(m=msg.m, client=ctx.client_id), ephemeral=True)

    async def create(self, ctx: Context, msg: CreateDocument) -> DocMeta:
        doc_id = doc_room(ctx.room)  # admit checked HUB_DOCEDIT_CREATE
        public = msg.public or self.settings.default_access
        meta = await self.documents.create(doc_id, ctx.identity, msg.title, public)
        if meta is None:
            raise HubError("conflict", f"Document {doc_id!r} exists already.")
        return meta

    async def rename(self, ctx: Context, msg: RenameDocument) -> DocMeta:
        od, _role = await self.open_doc(ctx, Role.EDITOR)
        return await self.documents.change_meta(od, lambda meta: meta.model_copy(update={"title": msg.title}))

    async def share(self, ctx: Context, msg: ShareDocument) -> DocMeta:
        od, _role = await self.open_doc(ctx, Role.OWNER)
        editors = list(dict.fromkeys(msg.editors))
        readers = [user for user in dict.fromkeys(msg.readers) if user not in editors]
        change = {"editors": editors, "readers": readers, "public": msg.public}
        return await self.documents.change_meta(od, lambda meta: meta.model_copy(update=change))

    async def delete(self, ctx: Context, msg: DeleteDocument) -> Empty:
        od, _role = await self.open_doc(ctx, Role.OWNER)
        await self.documents.delete(od)
        return Empty()

    async def save_version(self, ctx: Context, msg: SaveVersion) -> Version:
        od, _role = await self.open_doc(ctx, Role.EDITOR)
        state = od.ydoc.get_update()
        version = Version(id=sortable_id(), name=msg.name, created=time.time(), author=_author(ctx), size=len(state))
        await self.documents.store.save_version(od.doc_id, version, state, self.settings.max_versions)
        await ctx.publish("docedit.version_saved", VersionSaved(version=version), ephemeral=True)
        return version

    async def versions(self, ctx: Context, msg: ListVersions) -> VersionList:
        od, _role = await self.open_doc(ctx, Role.READER)
        return VersionList(versions=await self.documents.store.versions(od.doc_id))

    async def get_version(self, ctx: Context, msg: GetVersion) -> VersionState:
        od, _role = await self.open_doc(ctx, Role.READER)
        found = await self.documents.store.version(od.doc_id, msg.id)
        if found is None:
            raise HubError("not_found", f"Document {od.doc_id!r} has no version {msg.id!r}.")
        version, state = found
        return VersionState(version=version, update=b64encode(state))

    async def restore(self, ctx: Context, msg: RestoreVersion) -> Applied:
        od, _role = await self.open_doc(ctx, Role.EDITOR)
        found = await self.documents.store.version(od.doc_id, msg.id)
        if found is None:
            raise HubError("not_found", f"Document {od.doc_id!r} has no version {msg.id!r}.")
        version, state = found
        await self.documents.apply(od, restore_update(od.ydoc, state), client=None)
        await ctx.publish("docedit.restored", VersionRestored(version=version, by=_author(ctx)), ephemeral=True)
        return Applied()

    async def list_documents(self, ctx: Context, msg: ListDocuments) -> DocList:
        if ctx.room != INDEX_ROOM:
            raise HubError("bad_request", "docedit.list is accepted on 'docedit:@index' only.")
        return DocList(docs=await self.documents.listing(ctx.identity.user, INDEX_LIMIT))
