package dev.kbert.demo

import android.content.Context
import android.os.SystemClock
import com.google.mediapipe.tasks.core.BaseOptions
import com.google.mediapipe.tasks.text.textclassifier.TextClassifier
import com.google.mediapipe.tasks.text.textembedder.TextEmbedder
import dev.kbert.logic.ModelCard

/**
 * A kbert export run with MediaPipe Tasks: `model_<mode>.tflite` (which carries the
 * vocabulary, the labels and the input names as TFLite metadata, written by
 * `kbert export`) and `model_card.json`, read from the app's assets.
 *
 * Raw text goes in: MediaPipe's own WordPiece tokenizer reads the vocabulary from the
 * file, so the app has no tokenizer code. A `classify` export runs in MediaPipe's
 * `TextClassifier` (the file outputs probabilities), an `embed` export in its
 * `TextEmbedder`. Not thread-safe: use it from one thread.
 */
class TextModel private constructor(
    val modelFile: String,
    val card: ModelCard,
    private val classifier: TextClassifier?,
    private val embedder: TextEmbedder?,
) : AutoCloseable {

    /** One label with its probability. */
    class Score(val label: String, val probability: Float)

    class Classification(
        /** Every label, most probable first. */
        val scores: List<Score>,
        /** Tokenizing and inference together: MediaPipe does both in one call. */
        val ms: Double,
    )

    class Similarity(val cosine: Double, val ms: Double)

    val isClassifier get() = classifier != null

    fun classify(text: String): Classification {
        val model = checkNotNull(classifier) { "$modelFile is not a classifier" }
        val start = SystemClock.elapsedRealtimeNanos()
        val categories = model.classify(text).classificationResult().classifications()[0].categories()
        val ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        return Classification(categories.map { Score(it.categoryName(), it.score()) }, ms)
    }

    /** The cosine of two texts' embeddings. */
    fun similarity(first: String, second: String): Similarity {
        val model = checkNotNull(embedder) { "$modelFile is not an embedder" }
        val start = SystemClock.elapsedRealtimeNanos()
        val a = model.embed(first).embeddingResult().embeddings()[0]
        val b = model.embed(second).embeddingResult().embeddings()[0]
        val cosine = TextEmbedder.cosineSimilarity(a, b)
        return Similarity(cosine, (SystemClock.elapsedRealtimeNanos() - start) / 1e6)
    }

    override fun close() {
        classifier?.close()
        embedder?.close()
    }

    companion object {
        /** Modes in the order tried when several models are in the assets. */
        private val PREFERRED = listOf("dynamic", "float16", "float32", "int8").map { "model_$it.tflite" }

        fun load(context: Context): TextModel {
            val names = context.assets.list("")?.toSet().orEmpty()
            val modelFile = PREFERRED.firstOrNull { it in names }
                ?: names.filter { it.startsWith("model_") && it.endsWith(".tflite") }.minOrNull()
                ?: throw IllegalStateException(
                    "No model_<mode>.tflite in the app's assets. Copy an export into " +
                        "app/src/main/assets (mobile_demo/android/README.md) and rebuild."
                )
            check("model_card.json" in names) { "model_card.json is missing from the app's assets" }
            val card = context.assets.open("model_card.json").use { ModelCard.read(it) }
            val base = BaseOptions.builder().setModelAssetPath(modelFile).build()
            try {
                return when (card.task) {
                    "classify", "" -> TextModel(
                        modelFile, card,
                        TextClassifier.createFromOptions(
                            context, TextClassifier.TextClassifierOptions.builder().setBaseOptions(base).build()
                        ),
                        null,
                    )
                    "embed" -> TextModel(
                        modelFile, card, null,
                        TextEmbedder.createFromOptions(
                            context,
                            TextEmbedder.TextEmbedderOptions.builder().setBaseOptions(base).setL2Normalize(true).build(),
                        ),
                    )
                    else -> throw IllegalStateException(
                        "model_card.json says task \"${card.task}\": MediaPipe Tasks runs classify and embed exports"
                    )
                }
            } catch (e: RuntimeException) {
                // kbert writes no MediaPipe metadata for cased models, text-pair classifiers
                // and regressors (report.json says why); MediaPipe then refuses the file.
                if (e.message.orEmpty().contains("Metadata")) {
                    throw IllegalStateException(
                        "$modelFile has no MediaPipe metadata (a cased, text-pair or regression model, or an " +
                            "export made without the mediapipe package): see mobile_demo/android/README.md",
                        e,
                    )
                }
                throw e
            }
        }
    }
}
