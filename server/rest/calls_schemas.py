"""The calls REST bodies and answers (CONTRACT §2.1), for validation and the OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CallStatusName = Literal["INITIATING", "RINGING", "CONNECTING", "IN_PROGRESS", "ENDED", "FAILED"]


class CreateCallBody(BaseModel):
    """A call from `callerNumber` (Korean number: digits, hyphens or spaces; 9-11 digits)."""

    model_config = ConfigDict(strict=True, extra="ignore")
    callerNumber: str
    receiverNumber: str | None = None


class ProcessConversationForm(BaseModel):
    """multipart/form-data: the caller's audio (webm/mp3/wav/ogg) in a call."""

    audio: bytes = Field(description="audio file")
    callId: str
    systemPrompt: str | None = None


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


class TranscriptItem(BaseModel):
    id: str
    sessionId: str
    sender: Literal["user", "assistant", "system"]
    messageType: Literal["TEXT", "AUDIO", "SYSTEM"]
    content: str
    createdAt: str


class CallWithTranscriptData(BaseModel):
    call: CallOut
    transcript: list[TranscriptItem]


class CallWithTranscriptResponse(BaseModel):
    """The call and what was said in it, oldest first"""

    success: Literal[True]
    data: CallWithTranscriptData


class IceServer(BaseModel):
    urls: str


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


class SentimentOut(BaseModel):
    sentiment: Literal["positive", "neutral", "negative"]
    score: float = Field(ge=0, le=1, description="0 very negative, 0.5 neutral, 1 very positive")


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
