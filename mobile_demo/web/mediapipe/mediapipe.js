// kbert's exported .tflite (with the MediaPipe metadata kbert writes) in MediaPipe Tasks
// for the web: raw text in, MediaPipe's own WordPiece tokenizer, no kbert code.
//   ?classifier=/models/classifier.tflite  and/or  ?embedder=/models/embedder.tflite
// The test server (test/mediapipe.test.mjs) serves @mediapipe/tasks-text under /tasks-text/.
// window.kbertMediapipe.ready resolves when the models are loaded; classify(texts) and
// embed(texts) return every label's score by label index, and the first head's vector.
import {FilesetResolver, TextClassifier, TextEmbedder} from './tasks-text/text_bundle.mjs';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

async function load() {
  const fileset = await FilesetResolver.forTextTasks(new URL('tasks-text/wasm', location.href).href);
  const classifier = params.get('classifier') ?
    await TextClassifier.createFromOptions(fileset, {baseOptions: {modelAssetPath: params.get('classifier')}}) :
    null;
  const embedder = params.get('embedder') ?
    await TextEmbedder.createFromOptions(fileset, {baseOptions: {modelAssetPath: params.get('embedder')}}) :
    null;
  return {classifier, embedder};
}

const ready = load();

function classify(models, texts) {
  return texts.map((text) => {
    const {categories} = models.classifier.classify(text).classifications[0];
    const scores = new Array(categories.length).fill(0);
    const labels = new Array(categories.length).fill('');
    for (const c of categories) {
      scores[c.index] = c.score;
      labels[c.index] = c.categoryName;
    }
    return {scores, labels};
  });
}

function embed(models, texts) {
  return texts.map((text) => Array.from(models.embedder.embed(text).embeddings[0].floatEmbedding));
}

window.kbertMediapipe = {
  ready: ready.then((m) => ({classifier: Boolean(m.classifier), embedder: Boolean(m.embedder)})),
  classify: async (texts) => classify(await ready, texts),
  embed: async (texts) => embed(await ready, texts),
};

ready.then((models) => {
  $('status').textContent = `Loaded: ${[models.classifier && 'classifier', models.embedder && 'embedder']
      .filter(Boolean).join(', ') || 'nothing (add ?classifier=URL or ?embedder=URL)'}`;
  $('run').disabled = false;
  $('run').onclick = () => {
    const text = $('text').value;
    const out = {};
    if (models.classifier) out.classify = classify(models, [text])[0];
    if (models.embedder) out.embedding = embed(models, [text])[0].slice(0, 8).map((x) => x.toFixed(4)).join(' ') + ' ...';
    $('result').textContent = JSON.stringify(out, null, 1);
  };
}, (e) => {
  $('status').textContent = `Could not load: ${e}`;
});
