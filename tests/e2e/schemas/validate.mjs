// Validates Kubernetes manifests against the published schemas of their kinds (the CRD
// schemas of Istio and the Prometheus Operator, Kubernetes' own), as packaged by the npm
// `kubernetes-models` family. Usage: node validate.mjs MODULES_DIR < docs.json
// (a JSON array of manifests). Prints one line per manifest; exits 1 if any is invalid.
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { readFileSync } from "node:fs";

const modules = process.argv[2];
const models = {
  "extensions.istio.io/v1alpha1/WasmPlugin": "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin.js",
  "monitoring.coreos.com/v1/PodMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor.js",
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap.js",
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment.js",
};

let failed = false;
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const id = `${doc.apiVersion}/${doc.kind}`;
  const file = models[id];
  if (!file) {
    console.log(`unknown kind ${id}`);
    failed = true;
    continue;
  }
  const module = await import(pathToFileURL(join(modules, file)).href);
  try {
    new module[doc.kind](doc).validate();
    console.log(`valid ${id} ${doc.metadata?.name}`);
  } catch (e) {
    console.log(`INVALID ${id} ${doc.metadata?.name}: ${e.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
