"""SavedModels with the facts of TF Serving's own test models, built here (their files are not
copied): what tests/e2e/tfs_conformance/*.yaml send requests to.

- `half_plus_two` (TF1 graph, as servables/tensorflow/testdata/saved_model_half_plus_two.py
  describes it): y = 0.5 x + 2, y2 = 0.5 x + 3, y3 = 0.5 x2 + 3, x and x2 parsed from serialized
  tf.Examples ("tf_example", rank unknown), SignatureDefs serving_default (x -> y, predict),
  regress_x_to_y, regress_x_to_y2, regress_x2_to_y3, classify_x_to_y, classify_x2_to_y3, tensor
  names x:0, y:0, y2:0, y3:0, x2:0, tf_example:0. `plus` = 3 gives half_plus_three.
- `counter` (TF1, testdata/export_counter.py's facts): a float variable and get_counter,
  incr_counter, incr_counter_by (input "delta"), reset_counter, each output "output".
- `half_plus_two_tf2` (the script's native TF2 model): predict [1] -> y, regress/classify
  signatures over serialized tf.Examples, all with method_name "tensorflow/serving/predict".
- `echo`: one signature per input set json_tensor_test.cc uses, each output the input itself,
  plus signatures whose outputs only a model can make (scalars, zero batches, complex64, ...).
- `spin`: a signature that busy-loops n times (a run longer than a REST timeout).
"""
import os

import tensorflow as tf

PREDICT = "tensorflow/serving/predict"
REGRESS = "tensorflow/serving/regress"
CLASSIFY = "tensorflow/serving/classify"


def half_plus_two(export_dir: str, plus: float = 2.0, classify_x2: bool = True) -> str:
    """`classify_x2`: whether classify_x2_to_y3 is there (testdata/saved_model_half_plus_two_2_versions
    has it, saved_model_half_plus_two_cpu does not)."""
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(plus, name="b")
        c = v1.Variable(plus + 1.0, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example")
        parsed = v1.parse_example(serialized, {
            "x": v1.FixedLenFeature([1], tf.float32),
            "x2": v1.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        for key in ("x", "x2"):  # [batch, 1], as the test data's graph has them
            parsed[key].set_shape([None, 1])
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        a2 = v1.Variable(0.5, name="a2")
        c2 = v1.Variable(plus + 1.0, name="c2")
        y3 = tf.identity(a2 * x2 + c2, name="y3")
        info = v1.saved_model.utils.build_tensor_info
        signature = v1.saved_model.signature_def_utils.build_signature_def
        signatures = {
            "serving_default": signature({"x": info(x)}, {"y": info(y)}, PREDICT),
            "regress_x_to_y": signature({"inputs": info(serialized)}, {"outputs": info(y)}, REGRESS),
            "regress_x_to_y2": signature({"inputs": info(serialized)}, {"outputs": info(y2)}, REGRESS),
            "regress_x2_to_y3": signature({"inputs": info(x2)}, {"outputs": info(y3)}, REGRESS),
            "classify_x_to_y": signature({"inputs": info(serialized)}, {"scores": info(y)}, CLASSIFY),
        }
        if classify_x2:
            signatures["classify_x2_to_y3"] = signature({"inputs": info(x2)}, {"scores": info(y3)}, CLASSIFY)
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(export_dir)
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()
    return export_dir


def counter(export_dir: str) -> str:
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as session:
        value = v1.Variable(0.0, dtype=tf.float32, name="counter")
        incr = tf.identity(value.assign_add(1.0))  # the value after the update, as a tensor
        delta = v1.placeholder(tf.float32, name="delta")
        incr_by = tf.identity(value.assign_add(delta))
        reset = tf.identity(value.assign(0.0))
        info = v1.saved_model.utils.build_tensor_info
        signature = v1.saved_model.signature_def_utils.build_signature_def
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(export_dir)
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
            "get_counter": signature({}, {"output": info(value.read_value())}, PREDICT),
            "incr_counter": signature({}, {"output": info(incr)}, PREDICT),
            "incr_counter_by": signature({"delta": info(delta)}, {"output": info(incr_by)}, PREDICT),
            "reset_counter": signature({}, {"output": info(reset)}, PREDICT)})
        builder.save()
    return export_dir


class _HalfPlusTwo(tf.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = tf.Variable(0.5, name="a"), tf.Variable(2.0, name="b"), tf.Variable(3.0, name="c")

    def _x(self, serialized):
        return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_xy(self, serialized):
        return {"outputs": self.a * self._x(serialized) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_xy(self, serialized):
        return {"scores": self.a * self._x(serialized) + self.b}


def half_plus_two_tf2(export_dir: str) -> str:
    model = _HalfPlusTwo()
    tf.saved_model.save(model, export_dir, signatures={
        "serving_default": model.predict, "regress_x_to_y": model.regress_xy, "classify_x_to_y": model.classify_xy})
    return export_dir


# json_tensor_test.cc's TensorInfo maps: signature -> {input: dtype}; each output echoes its input.
ECHO_SIGNATURES = {
    "int32": {"default": tf.int32}, "float": {"default": tf.float32}, "double": {"default": tf.float64},
    "string": {"default": tf.string}, "int_tensor": {"int_tensor": tf.int32}, "str_tensor": {"str_tensor": tf.string},
    "two": {"int_tensor": tf.int32, "str_tensor": tf.string},
    "three": {"int_tensor": tf.int32, "str_tensor": tf.string, "bin_tensor": tf.string},
    "four": {"int_tensor": tf.int32, "str_tensor": tf.string, "float_tensor": tf.float32,
             "dbl_tensor": tf.float64},
    "bytes": {"str_tensor_bytes": tf.string}, "float_tensor": {"float_tensor": tf.float32},
    "five": {"int_tensor": tf.int32, "str_tensor": tf.string, "float_tensor": tf.float32,
             "double_scalar_tensor": tf.float64, "str_tensor_bytes": tf.string},
    "int64": {"default": tf.int64}, "bool": {"default": tf.bool}, "int8": {"default": tf.int8},
    "uint8": {"default": tf.uint8}, "int16": {"default": tf.int16}, "uint32": {"default": tf.uint32},
    "uint64": {"default": tf.uint64}, "half": {"default": tf.float16},
}


def _echo(spec):
    signature = [tf.TensorSpec(None, dtype, name=name) for name, dtype in spec.items()]
    names = list(spec)
    return tf.function(lambda *args: {name: tf.identity(arg) for name, arg in zip(names, args)},
                       input_signature=signature)


class _Shapes(tf.Module):
    """Outputs a client cannot send: a scalar, zero batches, mismatched batches, complex64."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def scalar(self, x):
        return {"tensor": tf.reduce_sum(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def complex64(self, x):
        return {"tensor": tf.complex(x, x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def zero_batch(self, x):
        return {"int_tensor": tf.zeros([0, 2], tf.int32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def zero_batches(self, x):
        return {"str_tensor": tf.zeros([0, 1, 2], tf.string), "float_tensor": tf.zeros([0, 3, 4], tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def zero_and_one_batch(self, x):
        return {"int_tensor": tf.zeros([0, 2], tf.int32), "str_tensor": tf.fill([1, 2], "foo")}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def batches_2_and_1(self, x):
        return {"int_tensor": tf.zeros([2, 3], tf.int32), "str_tensor": tf.fill([1, 3], "foo")}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def example_echo(self, inputs):
        """Classify: each serialized tf.Example back as its class label (what the request held)."""
        return {"classes": tf.reshape(inputs, [-1, 1])}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_values(self, inputs):
        """Regress: each example's float feature "v" as its result."""
        return {"outputs": tf.io.parse_example(inputs, {"v": tf.io.FixedLenFeature([], tf.float32)})["v"]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_values(self, inputs):
        """Classify: each example's "label" strings and "score" floats as its classes."""
        parsed = tf.io.parse_example(inputs, {"label": tf.io.VarLenFeature(tf.string),
                                              "score": tf.io.VarLenFeature(tf.float32)})
        return {"classes": tf.sparse.to_dense(parsed["label"]), "scores": tf.sparse.to_dense(parsed["score"])}


def echo(export_dir: str) -> str:
    module = _Shapes()
    signatures = {f"echo_{name}": _echo(spec).get_concrete_function() for name, spec in ECHO_SIGNATURES.items()}
    for name in ("scalar", "complex64", "zero_batch", "zero_batches", "zero_and_one_batch", "batches_2_and_1",
                 "example_echo", "regress_values", "classify_values"):
        signatures[name] = getattr(module, name).get_concrete_function()
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir


class _Spin(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="n")])
    def spin(self, n):
        """Loops n[0] times: a run as long as the client asks."""
        total = tf.while_loop(lambda i, t: i < n[0], lambda i, t: (i + 1, t + tf.sin(tf.cast(i, tf.float32))),
                              (tf.constant(0, tf.int64), tf.constant(0.0)))[1]
        return {"total": tf.fill(tf.shape(n), total)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="release")])
    def wait(self, release):
        """Loops until a file named release[0] exists: a run that ends when the test says, however
        slow the machine (spin's length is a guess at how long the rest of a test takes)."""
        waiting = lambda i: tf.equal(tf.size(tf.io.matching_files(release[0])), 0)
        loops = tf.while_loop(waiting, lambda i: i + 1, [tf.constant(0, tf.int64)])[0]
        return {"loops": tf.fill(tf.shape(release), loops)}


def spin(export_dir: str) -> str:
    module = _Spin()
    tf.saved_model.save(module, export_dir, signatures={"spin": module.spin, "wait": module.wait})
    return export_dir


def with_method_name(export_dir: str, signature: str, method_name: str) -> str:
    """Rewrites one SignatureDef's method_name in saved_model.pb (as predict_util_test.cc's
    MethodNameCheck does to its MetaGraphDef)."""
    from tensorflow.python.saved_model import loader_impl
    saved_model = loader_impl.parse_saved_model(export_dir)
    saved_model.meta_graphs[0].signature_def[signature].method_name = method_name
    with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
        f.write(saved_model.SerializeToString())
    return export_dir


def tf_saved_model_save(export_dir: str) -> str:
    """tensorflow_model_server_test.py test_tf_saved_model_save: y = v1 * v2 * x (3 * 2 * x)."""
    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    tf.saved_model.save(root, export_dir, root.f.get_concrete_function(tf.TensorSpec(None, tf.float32)))
    return export_dir


def tf_saved_model_save_multiple_signatures(export_dir: str) -> str:
    """test_tf_saved_model_save_multiple_signatures: serving_default -> 1, custom_signature_key -> 2."""
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(root, export_dir, signatures={"serving_default": root.f, "custom_signature_key": root.g})
    return export_dir


def keras_sequential(export_dir: str) -> str:
    """test_sequential_keras_saved_model_save: Input x of shape (1,), then a Lambda y = x."""
    model = tf.keras.models.Sequential()
    model.add(tf.keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    model.add(tf.keras.layers.Lambda(lambda x: x, name="y"))
    tf.saved_model.save(model, export_dir)
    return export_dir


BUILDERS = {"half_plus_two": half_plus_two, "half_plus_two_cpu": lambda path: half_plus_two(path, classify_x2=False),
            "tf_saved_model_save": tf_saved_model_save,
            "tf_saved_model_save_multiple_signatures": tf_saved_model_save_multiple_signatures,
            "keras_sequential": keras_sequential, "half_plus_three": lambda path: half_plus_two(path, plus=3.0),
            "counter": counter, "half_plus_two_tf2": half_plus_two_tf2, "echo": echo, "spin": spin,
            "odd_method": lambda path: with_method_name(half_plus_two(path), "serving_default",
                                                         "not/supported/method")}
