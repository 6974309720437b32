/**
 * Weight quantization for int8 graphs: symmetric int8 per output channel, the scheme of onnxruntime's
 * `quantize_dynamic(per_channel=True, weight_type=QInt8)` for MatMul weights. For a torch Linear weight
 * W [out, in], channel j (row j) gets scale_j = max_i |W[j, i]| / 127 and q[j, i] = round(W[j, i] / scale_j)
 * (ties to even, as numpy's rint), clamped to [-127, 127]; the graph stores q transposed to [in, out] for
 * DynamicQuantizeMatMul, whose b_scale input takes the [out] scales (one per column of B).
 */
import { DataType, type TensorSource } from "../onnx/onnx-types.ts";

/** Quantization of one [rows, cols] float matrix, one scale per row (= output channel). */
export interface QuantizedMatrix {
  /** int8 [cols, rows] row-major: the transposed matrix MatMul reads. */
  valuesT: Int8Array;
  /** float32 [rows]: w ≈ q · scale. */
  scales: Float32Array;
}

/** round() with ties to even (numpy.rint), for |x| ≤ 127.5. */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Per-row symmetric int8 quantization of `w` ([rows, cols] row-major float32, torch's [out, in]), output
 * transposed. An all-zero row gets scale 1 (its values are 0 either way). Pure; no errors thrown.
 */
export function quantizePerChannel(w: Float32Array, rows: number, cols: number): QuantizedMatrix {
  const scales = new Float32Array(rows);
  const valuesT = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(w[base + c]!));
    const scale = max > 0 ? Math.fround(max / 127) : 1;
    scales[r] = scale;
    for (let c = 0; c < cols; c++) {
      const q = rint(w[base + c]! / scale);
      valuesT[c * rows + r] = Math.min(127, Math.max(-127, q));
    }
  }
  return { valuesT, scales };
}

/**
 * The initializer for one part of a quantized torch weight [out, in]: "values" (int8 [in, out], named
 * `<name>_int8`) or "scales" (float32 [out], `<name>_scale`). `readFloat32` reads the whole weight as
 * float32; each part reads it once when written (26 MB for PickScore's largest), so nothing is held between.
 */
export function quantizedWeightSource(
  name: string,
  shape: [number, number],
  part: "values" | "scales",
  sourceOffset: number,
  readFloat32: () => Promise<Float32Array>,
): TensorSource {
  const [out, inDim] = shape;
  const values = part === "values";
  return {
    name: values ? `${name}_int8` : `${name}_scale`,
    dataType: values ? DataType.INT8 : DataType.FLOAT,
    dims: values ? [inDim, out] : [out],
    byteLength: values ? inDim * out : out * 4,
    sourceOffset,
    async write(sink) {
      const q = quantizePerChannel(await readFloat32(), out, inDim);
      const data = values ? q.valuesT : q.scales;
      await sink(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    },
  };
}
