"""Detectors: Detector.detect(frame) -> Detections."""
