"""The calls REST bodies and answers (CONTRACT §2.1), for validation and the OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.rest.chat import MessageOut

CallStatusName = Literal["INITIATING", "RINGING", "CONNECTING", "IN_PROGRESS", "ENDED", "FAILED"]


# a Korean number: 9-11 digits starting with 0, hyphens and spaces (or tabs) anywhere
PHONE_PATTERN = r"^[ \t-]*0(?:[ \t-]*[0-9]){8,10}[ \t-]*$"


# what `str.strip()` removes: a field made of these alone is empty to the handler
_PY_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
NOT_ONLY_SPACE = f"[^{_PY_SPACE}]"


class CreateCallBody(BaseModel):
    """A call from `callerNumber` (Korean number: digits, hyphens or spaces; 9-11 digits)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    callerNumber: str = Field(pattern=PHONE_PATTERN, max_length=64)
    receiverNumber: str | None = Field(default=None, pattern=PHONE_PATTERN, max_length=64)


class ProcessConversationForm(BaseModel):
    """multipart/form-data: the caller's audio (webm/mp3/wav/ogg) in a call."""

    # other fields are ignored, but a field's name is a header parameter: no control
    # characters, quotes or backslashes (a part header with them is malformed: 400)
    model_config = ConfigDict(
        json_schema_extra={"propertyNames": {"pattern": '^[^\\x00-\\x1f\\x7f"\\\\]*$'}}
    )

    audio: bytes = Field(description="audio file", min_length=1)
    callId: str = Field(min_length=1, max_length=4096, pattern=NOT_ONLY_SPACE)
    systemPrompt: str | None = Field(default=None, max_length=4096)


class CallOut(BaseModel):
    id: str
    sessionId: str
    callerNumber: str
    receiverNumber: str | None = None
    status: CallStatusName
    createdAt: str
    updatedAt: str
    connectedAt: str | None = None
    endedAt: str | None = None
    duration: int | None = Field(default=None, description="seconds")


class CallData(BaseModel):
    call: CallOut


class CallResponse(BaseModel):
    """The call"""

    success: Literal[True]
    data: CallData


class SentimentOut(BaseModel):
    sentiment: Literal["positive", "neutral", "negative"]
    score: float = Field(ge=0, le=1, description="0 very negative, 0.5 neutral, 1 very positive")


class TranscriptItem(MessageOut):
    """A message of the call's session, as `GET .../messages` lists it, with its sentiment."""

    sentiment: SentimentOut | None = Field(
        default=None, description="the caller's utterances, once judged"
    )


class CallWithTranscriptData(BaseModel):
    call: CallOut
    transcript: list[TranscriptItem]


class CallWithTranscriptResponse(BaseModel):
    """The call and what was said in it, oldest first"""

    success: Literal[True]
    data: CallWithTranscriptData


class IceServer(BaseModel):
    urls: str | list[str]
    username: str | None = Field(default=None, description="TURN servers only")
    credential: str | None = Field(default=None, description="TURN servers only")


class RtcConfig(BaseModel):
    iceServers: list[IceServer]
    iceCandidatePoolSize: int
    iceTransportPolicy: Literal["all", "relay"]
    bundlePolicy: Literal["balanced", "max-compat", "max-bundle"]
    rtcpMuxPolicy: Literal["require"]


class RtcConfigData(BaseModel):
    config: RtcConfig


class RtcConfigResponse(BaseModel):
    """The RTCPeerConnection configuration"""

    success: Literal[True]
    data: RtcConfigData


class ConversationOut(BaseModel):
    userMessage: str
    aiResponse: str
    sentiment: SentimentOut
    timestamp: str


class ProcessedData(BaseModel):
    conversation: ConversationOut
    audioUrl: str = Field(description="data:audio/mp3;base64,... (audio/wav offline)")


class ProcessedResponse(BaseModel):
    """The transcript, the answer, its sentiment and the spoken answer"""

    success: Literal[True]
    data: ProcessedData


class CallErrorDetail(BaseModel):
    message: str


class CallErrorResponse(BaseModel):
    """Error"""

    success: Literal[False]
    error: CallErrorDetail
