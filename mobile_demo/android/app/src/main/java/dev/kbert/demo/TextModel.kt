package dev.kbert.demo

import android.content.Context
import android.os.SystemClock
import dev.kbert.logic.Labels
import dev.kbert.logic.ModelCard
import dev.kbert.logic.WordPieceTokenizer
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel
import org.tensorflow.lite.Interpreter

/**
 * A kbert text classifier exported with `kbert export`: model_<mode>.tflite, vocab.txt,
 * labels.txt and model_card.json, read from the app's assets.
 *
 * Tokenizing, packing and softmax are the plain-Java `bertlogic` module (tested against
 * kbert's Python tokenizer); this class only adds LiteRT. Not thread-safe: use it from
 * one thread.
 */
class Classifier private constructor(
    private val interpreter: Interpreter,
    val modelFile: String,
    val card: ModelCard,
    private val tokenizer: WordPieceTokenizer,
    val labels: Labels,
    private val numClasses: Int,
) : AutoCloseable {

    class Result(
        val prediction: Labels.Prediction,
        /** Real tokens fed to the model, [CLS] and [SEP] included. */
        val tokens: Int,
        /** Word pieces cut off to fit seq_len. */
        val truncated: Int,
        val tokenizeMs: Double,
        val inferenceMs: Double,
    )

    fun classify(text: String): Result {
        val start = SystemClock.elapsedRealtimeNanos()
        val encoding = tokenizer.encode(text, card.seqLen)
        val tokenized = SystemClock.elapsedRealtimeNanos()
        // Inputs are int32 [1, seq_len]; bound by signature name, never by tensor index
        // (the converter orders the tensors ids, segment_ids, mask).
        val inputs = mapOf<String, Any>(
            "ids" to arrayOf(encoding.ids),
            "mask" to arrayOf(encoding.mask),
            "segment_ids" to arrayOf(encoding.segmentIds),
        )
        val logits = arrayOf(FloatArray(numClasses))
        interpreter.runSignature(inputs, mapOf<String, Any>(OUTPUT to logits), SIGNATURE)
        val done = SystemClock.elapsedRealtimeNanos()
        return Result(
            prediction = labels.predict(logits[0]),
            tokens = encoding.length(),
            truncated = encoding.truncated,
            tokenizeMs = (tokenized - start) / 1e6,
            inferenceMs = (done - tokenized) / 1e6,
        )
    }

    override fun close() = interpreter.close()

    companion object {
        const val SIGNATURE = "serving_default"
        const val OUTPUT = "logits"
        private val INPUTS = setOf("ids", "mask", "segment_ids")

        /** Modes in the order tried when several models are in the assets. */
        private val PREFERRED = listOf("dynamic", "float16", "float32", "int8").map { "model_$it.tflite" }

        fun load(context: Context, threads: Int = 4): Classifier {
            val assets = context.assets
            val names = assets.list("")?.toSet().orEmpty()
            val modelFile = PREFERRED.firstOrNull { it in names }
                ?: names.filter { it.startsWith("model_") && it.endsWith(".tflite") }.minOrNull()
                ?: throw IllegalStateException(
                    "No model_<mode>.tflite in the app's assets. Copy an export into " +
                        "app/src/main/assets (mobile_demo/android/README.md) and rebuild."
                )
            for (required in listOf("vocab.txt", "model_card.json")) {
                check(required in names) { "$required is missing from the app's assets" }
            }
            val card = assets.open("model_card.json").use { ModelCard.read(it) }
            require(card.task == "classify" || card.task.isEmpty()) {
                "This demo runs text classifiers; model_card.json says task \"${card.task}\"."
            }
            val tokenizer = assets.open("vocab.txt").use { WordPieceTokenizer.fromVocab(it, card.lowercase) }
            val labels = if ("labels.txt" in names) {
                assets.open("labels.txt").use { Labels.read(it) }
            } else {
                Labels(card.labels)
            }

            val options = Interpreter.Options().setNumThreads(threads)
            val interpreter = Interpreter(loadModel(context, modelFile), options)
            try {
                check(SIGNATURE in interpreter.signatureKeys) {
                    "$modelFile has no \"$SIGNATURE\" signature (it has ${interpreter.signatureKeys.toList()})"
                }
                val inputs = interpreter.getSignatureInputs(SIGNATURE).toSet()
                check(inputs == INPUTS) { "$modelFile: expected inputs $INPUTS, found $inputs" }
                val ids = interpreter.getInputTensorFromSignature("ids", SIGNATURE).shape()
                check(ids.contentEquals(intArrayOf(1, card.seqLen))) {
                    "$modelFile: ids is ${ids.toList()}, model_card.json says seq_len ${card.seqLen}"
                }
                val shape = interpreter.getOutputTensorFromSignature(OUTPUT, SIGNATURE).shape()
                check(shape.size == 2 && shape[0] == 1) {
                    "$modelFile: \"$OUTPUT\" is ${shape.toList()}, expected [1, classes]"
                }
                return Classifier(interpreter, modelFile, card, tokenizer, labels, shape[1])
            } catch (e: Exception) {
                interpreter.close()
                throw e
            }
        }

        /** Memory-maps the model; reads it into memory if the APK stored it compressed. */
        private fun loadModel(context: Context, name: String): ByteBuffer =
            try {
                context.assets.openFd(name).use { fd ->
                    FileInputStream(fd.fileDescriptor).channel.use { channel ->
                        channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                    }
                }
            } catch (e: FileNotFoundException) {
                val bytes = context.assets.open(name).use { it.readBytes() }
                ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).apply {
                    put(bytes)
                    rewind()
                }
            }
    }
}
