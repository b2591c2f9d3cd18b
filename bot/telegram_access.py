"""Who may use the bot, which messages are meant for it, and which conversation each is in.

Private chats: any text is a question. Groups: only messages that mention the bot or reply to
one of its messages. Each chat (and forum thread) is one conversation.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType

from bot.telegram_delivery import reply
from bot.telegram_format import escape
from index.settings import Settings

# One logger for the whole front end, as before it was split into modules.
log = logging.getLogger("bot.telegram")

NOT_ALLOWED = "Sorry, this bot is private. Ask its owner for access."


def conversation_id(message: Message) -> str:
    """One conversation per chat, and per thread in forum supergroups."""
    if message.is_topic_message and message.message_thread_id:
        return f"tg:{message.chat.id}:thread:{message.message_thread_id}"
    return f"tg:{message.chat.id}"


class Access:
    """The admins and the allowlists; no allowlist at all means open to everyone."""

    def __init__(self, settings: Settings) -> None:
        self.admins = set(settings.telegram_admins)
        self.allowed_users = set(settings.telegram_allowed_users)
        self.allowed_chats = set(settings.telegram_allowed_chats)
        self._refused: set[int] = set()

    @property
    def open(self) -> bool:
        return not (self.allowed_users or self.allowed_chats)

    def is_admin(self, update: Update) -> bool:
        user = update.effective_user
        return user is not None and user.id in self.admins

    def allowed(self, user_id: int | None, chat_id: int | None) -> bool:
        if self.open:
            return True  # no allowlist: open (the startup log says so)
        return (
            user_id in self.admins or user_id in self.allowed_users or chat_id in self.allowed_chats
        )

    async def admit(self, update: Update) -> bool:
        """Allowed users pass; anyone else gets one polite refusal, then silence."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return False
        if self.allowed(user.id, chat.id):
            return True
        if user.id not in self._refused:
            self._refused.add(user.id)
            log.info("refused user %s in chat %s (not on the allowlist)", user.id, chat.id)
            await reply(update.effective_message, escape(NOT_ALLOWED))
        return False


def is_private(message: Message) -> bool:
    return message.chat.type == ChatType.PRIVATE


def addressed(message: Message, bot: Any) -> bool:
    """Private chats always; in groups, a reply to the bot or a mention in the caption."""
    if is_private(message):
        return True
    return _replies_to_bot(message, bot) or _mentions(message, bot, caption=True)


def question_in(message: Message, bot: Any) -> str | None:
    """The question in a message, or None when the message is not for the bot."""
    text = message.text or ""
    if is_private(message):
        return text
    if not (_mentions(message, bot) or _replies_to_bot(message, bot)):
        return None
    for entity, value in message.parse_entities([MessageEntity.TEXT_MENTION]).items():
        if entity.user and entity.user.id == bot.id:
            text = text.replace(value, " ", 1)
    if bot.username:
        # "@bot, what ..." / "hey @bot: what ...": the punctuation goes with the mention.
        text = re.sub(rf"(?<!\w)@{re.escape(bot.username)}\b[,:;]?", " ", text, flags=re.I)
    return " ".join(text.split()).strip(" ,:;")


def _replies_to_bot(message: Message, bot: Any) -> bool:
    replied = message.reply_to_message
    return bool(replied and replied.from_user and replied.from_user.id == bot.id)


def _mentions(message: Message, bot: Any, caption: bool = False) -> bool:
    kinds = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
    entities = message.parse_caption_entities(kinds) if caption else message.parse_entities(kinds)
    handle = f"@{bot.username}".lower()
    return any(
        (e.type == MessageEntity.MENTION and value.lower() == handle)
        or (e.type == MessageEntity.TEXT_MENTION and e.user is not None and e.user.id == bot.id)
        for e, value in entities.items()
    )
