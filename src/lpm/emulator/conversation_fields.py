"""UpdateConversationField: one request's fields applied to one conversation, atomically.

Fields are applied in order onto the live conversation while a :class:`FieldPlan` records what
they did (dialogs created, routing to cancel or restart, the conversation finished, the OK
message).  If any field fails, the conversation is restored in place and the error raised: a
refused request changes nothing and announces nothing.  Only once every field succeeded is the
plan committed: indexes, routing, then one change announcement.  Closing (a dialog, MAIN with
its optional POST_SURVEY, the whole conversation) lives here, as only field updates close.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lpm.emulator import entities as m
from lpm.emulator.entities import (
    TTR_DEFAULTS,
    Account,
    Actor,
    Conversation,
    Dialog,
    Participant,
    new_dialog_id,
    survey_app_install_id,
)
from lpm.emulator.world_errors import BadRequest, Forbidden, NotFound
from lpm.protocol import requests as pm

if TYPE_CHECKING:
    from lpm.emulator.world import World


@dataclass(slots=True)
class FieldPlan:
    """What an UpdateConversationField request did, applied once all its fields succeeded."""

    message: str | None = None
    #: The caller was a participant (or a manager) when the request arrived.
    actor_authorized: bool = False
    changed: bool = False
    reroute: bool = False
    transfer: bool = False
    suggested: str | None = None
    assigned: str | None = None
    cancel_routing: bool = False
    finished: bool = False
    new_dialogs: list[str] = field(default_factory=list)


class ConversationFields:
    """Applies UpdateConversationField requests to the conversations of ``world``."""

    def __init__(self, world: World) -> None:
        self.world = world

    def update(
        self,
        actor: Actor,
        conversation_id: str,
        fields: list[pm.ConversationField],
    ) -> str:
        """``cm.UpdateConversationField``: apply every field atomically; returns the OK string."""
        acc = self.world.account(actor.account_id)
        conv = self.world.conversation(acc.account_id, conversation_id)
        if not fields:
            raise BadRequest("conversationField is empty")
        if not self._is_self_join(actor, fields):
            self.world.authorize_read(actor, conv)
        before = copy.deepcopy(conv)
        plan = FieldPlan(actor_authorized=self._is_participant_or_manager(conv, actor))
        try:
            for f in fields:
                self._apply_field(actor, acc, conv, f, plan)
        except Exception:
            # Restore in place so every holder of the object sees the old state.
            for name in conv.__struct_fields__:
                setattr(conv, name, getattr(before, name))
            raise
        self._commit_plan(acc, conv, plan)
        return plan.message or "OK"

    @staticmethod
    def _is_self_join(actor: Actor, fields: list[pm.ConversationField]) -> bool:
        return (
            actor.kind == "agent"
            and len(fields) == 1
            and isinstance(fields[0], pm.ParticipantsChangeField)
            and fields[0].type == "ADD"
        )

    def _apply_field(
        self, actor: Actor, acc: Account, conv: Conversation, f: pm.ConversationField, plan: FieldPlan
    ) -> None:
        consumer = actor.is_consumer
        if isinstance(f, pm.ConversationStateField):
            if f.conversationState != m.CLOSE:
                raise BadRequest(f"conversationState {f.conversationState} cannot be set")
            if conv.stage == m.CLOSE or conv.main.state == m.CLOSE:
                raise BadRequest(f"conversation {conv.conv_id} is already closed")
            self._close_main(acc, conv, actor, "Closed by " + ("consumer" if consumer else "agent"), plan)
            plan.message = "OK Conversation resolved successfully"
        elif isinstance(f, pm.StageField):
            if f.conversationState != m.CLOSE:
                raise BadRequest(f"stage {f.conversationState} cannot be set")
            if conv.stage == m.CLOSE:
                raise BadRequest(f"conversation {conv.conv_id} is already closed")
            self._close_all(conv, actor, plan)
            plan.message = "OK Conversation resolved successfully"
        elif isinstance(f, pm.DialogChangeField):
            self._dialog_change(acc, conv, actor, f, plan)
        elif isinstance(f, pm.CSATRateField):
            if not consumer:
                raise Forbidden("only the consumer rates a conversation")
            if not 0 <= f.csatRate <= 5:
                raise BadRequest("csatRate must be between 1 and 5")
            if f.status not in ("FILLED", "PARTIALLY_FILLED", "SKIPPED"):
                raise BadRequest(f"unknown CSAT status {f.status}")
            conv.csat = {
                "csatRate": f.csatRate,
                "csatResolutionConfirmation": bool(f.csatResolutionConfirmation),
                "status": f.status,
            }
            plan.message = "OK CSAT rate set successfully"
        elif isinstance(f, pm.TTRField):
            if f.ttrType not in TTR_DEFAULTS:
                raise BadRequest(f"unknown ttrType {f.ttrType}")
            if f.value < 0:
                raise BadRequest("TTR value must be >= 0")
            conv.ttr_type = f.ttrType
            conv.ttr_value = f.value if (f.ttrType == "CUSTOM" or f.value) else TTR_DEFAULTS[f.ttrType]
            plan.message = "OK TTR updated successfully"
        elif consumer:
            raise Forbidden(f"consumers cannot change {type(f).__name__}")
        elif isinstance(f, pm.ParticipantsChangeField):
            self._participants_change(acc, conv, actor, f, plan)
        elif isinstance(f, pm.SkillField):
            self._require_participant_or_manager(conv, actor, plan)
            conv.skill_id = self.world.resolve_skill(acc, f.skill)
            plan.reroute = True
            plan.transfer = True
            plan.message = plan.message or "OK Skill updated successfully"
        elif isinstance(f, pm.ManualETTRField):
            conv.manual_ettr = f.time
            plan.message = "OK Manual ETTR updated successfully"
        elif isinstance(f, pm.DelayField):
            conv.delay = {"type": f.type, "tillWhen": f.tillWhen}
            plan.message = "OK Delay updated successfully"
        elif isinstance(f, pm.NoteField):
            conv.note = f.note
            plan.message = "OK Note updated successfully"
        elif isinstance(f, pm.TopicField):
            conv.topic = f.note
            plan.message = "OK Topic updated successfully"
        elif isinstance(f, pm.ConversationHandlerField):
            plan.message = "OK Conversation handler updated successfully"
        plan.changed = True

    def _is_participant_or_manager(self, conv: Conversation, actor: Actor) -> bool:
        if actor.kind == "app":
            return True
        user = self.world.account(actor.account_id).users.get(actor.id)
        if user is None:
            return False
        return user.is_manager or any(
            p.id == user.user_id and p.state == m.ACTIVE for d in conv.dialogs for p in d.participants
        )

    @staticmethod
    def _require_participant_or_manager(conv: Conversation, actor: Actor, plan: FieldPlan) -> None:
        # Judged on the state *before* the request: a transfer removes the caller first and
        # then changes the skill, and must not lose its right half-way.
        if not plan.actor_authorized:
            raise Forbidden(f"agent {actor.id} is not a participant of conversation {conv.conv_id}")

    def _participants_change(
        self,
        acc: Account,
        conv: Conversation,
        actor: Actor,
        f: pm.ParticipantsChangeField,
        plan: FieldPlan,
    ) -> None:
        target = acc.resolve_user(f.userId) if f.userId else acc.users.get(actor.id)
        if target is None:
            raise BadRequest(f"unknown user {f.userId}")
        if f.role not in m.AGENT_ROLES:
            raise BadRequest(f"role {f.role} cannot be changed this way")
        is_self = actor.kind == "agent" and target.user_id == actor.id
        if not is_self or f.type not in ("ADD", "REMOVE"):
            self._require_participant_or_manager(conv, actor, plan)
        if conv.stage == m.CLOSE:
            raise BadRequest(f"conversation {conv.conv_id} is closed")
        dialog = conv.open_dialog()
        if dialog is None:
            raise BadRequest(f"conversation {conv.conv_id} has no open dialog")
        dialog.last_update_ts = self.world.now_ms()
        current = [p for p in dialog.participants if p.id == target.user_id]
        if f.type == "ADD":
            if f.role == m.ASSIGNED_AGENT and any(
                p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE for p in dialog.participants
            ):
                raise BadRequest("the conversation already has an assigned agent")
            if any(p.role == f.role and p.state == m.ACTIVE for p in current):
                plan.message = "OK Agent added successfully"
                return
            dialog.participants = [
                p for p in dialog.participants if not (p.id == target.user_id and p.state == m.SUGGESTED)
            ]
            dialog.participants.append(Participant(id=target.user_id, role=f.role))
            if f.role == m.ASSIGNED_AGENT:
                plan.assigned = target.user_id
            plan.message = "OK Agent added successfully"
        elif f.type == "REMOVE":
            matching = [p for p in current if p.role == f.role]
            if not matching and f.role == m.ASSIGNED_AGENT and f.userId is None:
                matching = [p for p in dialog.participants if p.role == m.ASSIGNED_AGENT]
            if not matching and f.role == m.ASSIGNED_AGENT:
                # The transfer idiom REMOVE(ASSIGNED_AGENT, own id) names the caller.
                matching = [p for p in dialog.participants if p.role == m.ASSIGNED_AGENT]
            if not matching:
                raise BadRequest(f"{target.user_id} is not a {f.role} of conversation {conv.conv_id}")
            dialog.participants = [p for p in dialog.participants if p not in matching]
            if f.role == m.ASSIGNED_AGENT:
                plan.reroute = True
            plan.message = "OK Agent removed successfully"
        elif f.type == "SUGGEST":
            if f.role != m.ASSIGNED_AGENT:
                raise BadRequest("only ASSIGNED_AGENT can be suggested")
            dialog.participants = [
                p for p in dialog.participants if not (p.id == target.user_id and p.state == m.SUGGESTED)
            ]
            dialog.participants.append(
                Participant(id=target.user_id, role=m.ASSIGNED_AGENT, state=m.SUGGESTED)
            )
            plan.suggested = target.user_id
            plan.reroute = True
            plan.transfer = True
            plan.message = "OK Agent suggested successfully"
        elif f.type == "UPDATE":
            if not current:
                raise BadRequest(f"{target.user_id} is not a participant of conversation {conv.conv_id}")
            if f.role == m.ASSIGNED_AGENT and any(
                p.role == m.ASSIGNED_AGENT and p.id != target.user_id for p in dialog.participants
            ):
                raise BadRequest("the conversation already has an assigned agent")
            current[0].role = f.role
            current[0].state = m.ACTIVE
            if f.role == m.ASSIGNED_AGENT:
                plan.assigned = target.user_id
            plan.message = "OK Participant updated successfully"
        else:
            raise BadRequest(f"unknown ParticipantsChange type {f.type}")

    def _dialog_change(
        self, acc: Account, conv: Conversation, actor: Actor, f: pm.DialogChangeField, plan: FieldPlan
    ) -> None:
        spec = f.dialog
        if f.type == "CREATE":
            if actor.is_consumer:
                raise Forbidden("consumers cannot create dialogs")
            if conv.stage == m.CLOSE:
                raise BadRequest(f"conversation {conv.conv_id} is closed")
            now = self.world.now_ms()
            dialog = Dialog(
                dialog_id=spec.dialogId or f.dialogId or new_dialog_id(),
                dialog_type=spec.dialogType or "OTHER",
                channel_type=spec.channelType or "MESSAGING",
                state=m.OPEN,
                creation_ts=now,
                participants=[Participant(id=conv.consumer_id, role=m.CONSUMER)],
                meta_data=spec.metaData,
                last_update_ts=now,
            )
            if dialog.dialog_id in acc.dialog_index:
                raise BadRequest(f"dialog {dialog.dialog_id} already exists")
            conv.dialogs.append(dialog)
            plan.new_dialogs.append(dialog.dialog_id)
            plan.message = "OK Dialog created successfully"
            return
        if f.type != "UPDATE":
            raise BadRequest(f"unknown DialogChange type {f.type}")
        dialog_id = spec.dialogId or f.dialogId
        found = conv.dialog(dialog_id) if dialog_id else None
        if found is None:
            raise NotFound(f"dialog {dialog_id} not found in conversation {conv.conv_id}")
        dialog = found
        if spec.state != m.CLOSE:
            raise BadRequest("a dialog can only be updated to state CLOSE")
        if dialog.state == m.CLOSE:
            raise BadRequest(f"dialog {dialog.dialog_id} is already closed")
        cause = spec.closedCause or ("Closed by consumer" if actor.is_consumer else "Closed by agent")
        if dialog.dialog_type == m.MAIN:
            self._close_main(acc, conv, actor, cause, plan, closed_by=spec.closedBy)
        else:
            self._close_dialog(dialog, actor, cause, spec.closedBy)
            if conv.open_dialog() is None:
                self._finish(conv, actor, plan)
        # What the platform answers a DialogChange close (the PCS tutorial's trace).
        plan.message = "OK Conversation resolved successfully"

    def _closer(self, actor: Actor, closed_by: str | None = None) -> str:
        if closed_by in ("AGENT", "CONSUMER", "SYSTEM", "TIMEOUT"):
            return closed_by
        if actor.is_consumer or actor.role == m.CONSUMER:
            return "CONSUMER"
        return "AGENT" if actor.kind in ("agent", "app") else "SYSTEM"

    def _close_dialog(self, dialog: Dialog, actor: Actor, cause: str, closed_by: str | None = None) -> None:
        now = self.world.now_ms()
        dialog.state = m.CLOSE
        dialog.end_ts = now
        dialog.closed_by = self._closer(actor, closed_by)
        dialog.closed_cause = cause
        dialog.last_update_ts = now

    def _close_main(
        self,
        acc: Account,
        conv: Conversation,
        actor: Actor,
        cause: str,
        plan: FieldPlan,
        closed_by: str | None = None,
    ) -> None:
        main = conv.main
        if main.state == m.CLOSE:
            raise BadRequest(f"conversation {conv.conv_id} is already closed")
        self._close_dialog(main, actor, cause, closed_by)
        conv.close_reason = main.closed_by
        conv.awaiting_reply_since = None
        plan.cancel_routing = True
        skill = acc.skills.get(conv.skill_id)
        if skill is not None and skill.survey and "MULTI_DIALOG" in conv.features:
            now = self.world.now_ms()
            participants = [Participant(id=conv.consumer_id, role=m.CONSUMER)]
            if skill.survey_bot_user_id and skill.survey_bot_user_id in acc.users:
                participants.append(Participant(id=skill.survey_bot_user_id, role=m.AGENT))
            for p in main.participants:
                if p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE and p.id != skill.survey_bot_user_id:
                    participants.append(Participant(id=p.id, role=m.READER))
            survey = Dialog(
                dialog_id=new_dialog_id(),
                dialog_type=m.POST_SURVEY,
                channel_type="MESSAGING",
                state=m.OPEN,
                creation_ts=now,
                participants=participants,
                # The survey's app install (a UUID on the platform; one per account and skill here).
                meta_data={"appInstallId": survey_app_install_id(acc.account_id, conv.skill_id)},
                last_update_ts=now,
            )
            conv.dialogs.append(survey)
            plan.new_dialogs.append(survey.dialog_id)
        else:
            for dialog in conv.dialogs[1:]:
                if dialog.state == m.OPEN:
                    self._close_dialog(dialog, actor, cause, closed_by)
            self._finish(conv, actor, plan)

    def _close_all(self, conv: Conversation, actor: Actor, plan: FieldPlan) -> None:
        cause = "Closed by " + ("consumer" if actor.is_consumer else "agent")
        for dialog in conv.dialogs:
            if dialog.state == m.OPEN:
                self._close_dialog(dialog, actor, cause)
        conv.close_reason = conv.close_reason or self._closer(actor)
        conv.awaiting_reply_since = None
        plan.cancel_routing = True
        self._finish(conv, actor, plan)

    def _finish(self, conv: Conversation, actor: Actor, plan: FieldPlan) -> None:
        conv.stage = m.CLOSE
        conv.end_ts = self.world.now_ms()
        conv.close_reason = conv.close_reason or self._closer(actor)
        plan.finished = True

    def _commit_plan(self, acc: Account, conv: Conversation, plan: FieldPlan) -> None:
        for dialog_id in plan.new_dialogs:
            acc.dialog_index[dialog_id] = conv.conv_id
            acc.events.setdefault(dialog_id, [])
        if plan.finished and acc.open_conversation.get(conv.consumer_id) == conv.conv_id:
            del acc.open_conversation[conv.consumer_id]
        if plan.cancel_routing or plan.finished:
            self.world.router.cancel(acc, conv.conv_id)
        elif plan.assigned is not None:
            self.world.router.assigned_directly(acc, conv.conv_id, plan.assigned)
        if plan.changed or plan.new_dialogs:
            self.world.changed(conv)
        if (
            plan.reroute
            and conv.main.state == m.OPEN
            and not any(p.role == m.ASSIGNED_AGENT and p.state == m.ACTIVE for p in conv.main.participants)
        ):
            self.world.router.route(acc, conv, is_transfer=plan.transfer, suggested=plan.suggested)
