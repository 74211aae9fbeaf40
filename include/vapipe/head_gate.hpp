#pragma once
// The head gate of an execution context (ContextOptions::head_gate in runtime.hpp), in a header of its own
// so that the lowering (src/ops) takes it as it is.

namespace vapipe {

// Raw detection heads computed only where a decoder reads them (YOLOv5's: each anchor's objectness logit
// first, its box and classes only where that logit is above `gate_logit`). Applies to the 1x1 float
// convolutions writing a channels-last head output of anchors x outputs_per_anchor channels; every anchor's
// gate channel is always written, its other channels only where the gate is above `gate_logit` (elsewhere
// the output buffer keeps what it held). Off when outputs_per_anchor is 0: every output computed.
struct HeadGate {
  int outputs_per_anchor = 0;  // e.g. 85 for YOLOv5 on COCO (4 box + 1 objectness + 80 classes)
  int gate_channel = 4;        // the objectness logit, within each anchor's channels
  float gate_logit = 0.0F;  // the decoder's own floor: it reads nothing more where the gate is not above it
};

}  // namespace vapipe
