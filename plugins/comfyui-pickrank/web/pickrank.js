// Shows a PickScoreRank / PickScoreSelect node's scores on the node after it runs: the node's `ui.text`
// (one line per image, best first) in a read-only text box that is neither saved in the workflow nor
// sent with the prompt.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const NODES = new Set(["PickScoreRank", "PickScoreSelect"]);
const WIDGET = "pickscore_scores";

/** The text to show for an `executed` message's output: its `text` lines (one per call of the node). */
export function scoresText(output) {
  const text = output?.text;
  return Array.isArray(text) ? text.filter((t) => typeof t === "string").join("\n\n") : "";
}

function showScores(node, text) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET, ["STRING", { multiline: true }], app).widget;
    if (widget.inputEl) widget.inputEl.readOnly = true;
    widget.serialize = false; // not in the workflow's widgets_values
    widget.options ??= {};
    widget.options.serialize = false; // not in the API prompt
  }
  widget.value = text;
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "pickrank.PickScoreScores",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData?.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output, ...rest) {
      onExecuted?.apply(this, [output, ...rest]);
      showScores(this, scoresText(output));
    };
  },
});
