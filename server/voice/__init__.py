"""The voice call pipeline: the AI joins a WebRTC call as a peer (CONTRACT §2).

Read top to bottom, one stage per module: `peer` (the RTCPeerConnection), `inbound` (frames
from the caller's track), `resample` (16 kHz mono), `vad` (speech or not, per 20 ms),
`turns` (end of an utterance), `speaker` (TTS into the outgoing track and the
`ai-audio-response` event), `outbound` (the paced outgoing track), wired by `pipeline`;
`call` ties one AI peer to one call, `registry` holds the live ones.
"""
