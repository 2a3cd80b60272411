// Live video of one camera in a container element: WebRTC first (lowest latency), MJPEG
// (an <img> on stream.mjpeg) when WebRTC is not available or does not start in time.
//
// The gateway only ever sends the masked picture on these, unless `unmasked` is asked for
// and the user holds an active unmask grant (the server checks; this page cannot override it).

import { post, seg } from "./api.js";

const WEBRTC_START_TIMEOUT_MS = 8000;
const ICE_GATHER_TIMEOUT_MS = 2000;
const MJPEG_RETRY_MS = 2000;

/** Wait until the browser has gathered its ICE candidates (the gateway takes no trickle). */
function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    // Host candidates come at once; do not wait for slow interfaces.
    setTimeout(resolve, ICE_GATHER_TIMEOUT_MS);
  });
}

/** Resolves when the video shows a first picture; rejects after `ms`. */
function firstPicture(video, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no picture over WebRTC in time")), ms);
    const ok = () => {
      clearTimeout(timer);
      resolve();
    };
    if (video.readyState >= 2) ok();
    else video.addEventListener("loadeddata", ok, { once: true });
  });
}

/**
 * A live view inside `container`. `onState(text)` is told what is happening.
 * Returns an object with `close()`; `transport` says "webrtc" or "mjpeg" once chosen.
 */
export function openLive(
  container,
  cameraId,
  { unmasked = false, onState = () => {}, onEnded = () => {} } = {},
) {
  const view = { transport: null, closed: false, pc: null, element: null };

  const setElement = (element) => {
    if (view.element) view.element.remove();
    view.element = element;
    container.append(element);
  };

  const startMjpeg = () => {
    if (view.closed) return;
    const img = document.createElement("img");
    img.className = "live-picture";
    img.alt = unmasked ? "Original (unmasked) live picture" : "Masked live picture";
    const base = `/api/cameras/${seg(cameraId)}`;
    const url = unmasked ? `${base}/unmasked/stream.mjpeg` : `${base}/stream.mjpeg`;
    img.src = url;
    if (!unmasked) {
      // The masked stream comes back by itself after a network or gateway restart. (The
      // unmasked one ends with its grant and is not retried.)
      img.addEventListener("error", () => {
        if (!view.closed) setTimeout(() => !view.closed && (img.src = url), MJPEG_RETRY_MS);
      });
    }
    setElement(img);
    view.transport = "mjpeg";
    container.dataset.transport = "mjpeg";
    onState("MJPEG");
  };

  const startWebRtc = async () => {
    const video = document.createElement("video");
    video.className = "live-picture";
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    setElement(video);
    const pc = new RTCPeerConnection({ iceServers: [] });
    view.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (event) => {
      video.srcObject = event.streams[0] || new MediaStream([event.track]);
      event.track.addEventListener("ended", () => {
        if (!view.closed) onEnded();
      });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (view.closed) return;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        onState(`WebRTC ${pc.connectionState}`);
        if (unmasked) {
          onEnded(); // the gateway closes it when the grant ends
        } else if (view.transport === "webrtc") {
          // A masked view that broke after it played: go on with MJPEG.
          pc.close();
          view.pc = null;
          startMjpeg();
        }
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
    const answer = await post(`/api/cameras/${seg(cameraId)}/webrtc`, {
      type: "offer",
      sdp: pc.localDescription.sdp,
      unmasked,
    });
    if (view.closed) return;
    await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
    await firstPicture(video, WEBRTC_START_TIMEOUT_MS);
    view.transport = "webrtc";
    container.dataset.transport = "webrtc";
    onState("WebRTC");
  };

  if (typeof RTCPeerConnection === "function") {
    onState("connecting…");
    startWebRtc().catch((error) => {
      if (view.closed) return;
      // A refusal (403 and the like) is final: MJPEG would be refused the same way.
      if (error && error.status >= 400 && error.status < 500) {
        onState(`refused: ${error}`);
        return;
      }
      console.warn("WebRTC failed, falling back to MJPEG:", error);
      if (view.pc) view.pc.close();
      view.pc = null;
      startMjpeg();
    });
  } else {
    startMjpeg();
  }

  view.close = () => {
    view.closed = true;
    if (view.pc) view.pc.close();
    if (view.element) {
      if (view.element.tagName === "IMG") view.element.src = ""; // ends the MJPEG request
      if (view.element.tagName === "VIDEO") view.element.srcObject = null;
      view.element.remove();
    }
  };
  return view;
}
