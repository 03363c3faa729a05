# One image for the Dataflow Flex template launcher AND the workers (sdk_container_image):
# Beam's Python 3.11 SDK image (the worker boot entrypoint), plus Google's Flex template
# launcher binary, plus this package and its pinned requirements.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/cassandra-export:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/cassandra-export:0.1.0
#   gcloud dataflow flex-template build gs://BUCKET/templates/cassandra-export.json \
#     --image REGION-docker.pkg.dev/PROJECT/REPO/cassandra-export:0.1.0 \
#     --sdk-language PYTHON --metadata-file metadata.json
#   gcloud dataflow flex-template run "export-$(date +%s)" --region REGION \
#     --template-file-gcs-location gs://BUCKET/templates/cassandra-export.json \
#     --parameters hosts=10.0.0.5,table=shop.orders,output=gs://BUCKET/exports/orders \
#     --parameters sdk_container_image=REGION-docker.pkg.dev/PROJECT/REPO/cassandra-export:0.1.0
#
# The SDK image's Beam version must equal the pin in requirements.txt (apache-beam==2.77.0).
FROM gcr.io/dataflow-templates-base/python311-template-launcher-base:latest AS template_launcher

FROM apache/beam_python3.11_sdk:2.77.0

COPY --from=template_launcher /opt/google/dataflow/python_template_launcher \
     /opt/google/dataflow/python_template_launcher

ARG WORKDIR=/template
WORKDIR ${WORKDIR}

COPY requirements.txt setup.py MANIFEST.in main.py metadata.json ./
COPY pipeline pipeline
COPY transforms transforms
COPY run_configs run_configs

# `pip install .` also compiles the CSV writer's line builder (an optional C extension)
# when the image has a C compiler; without one the install succeeds and the CSV writer
# uses its NumPy path (the same bytes, more CPU per row).
# Everything is installed here, so workers started from this image need nothing at boot;
# PIP_NO_DEPS keeps the launcher's staging of setup.py from resolving dependencies again.
RUN pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps . \
    && pip check
ENV PIP_NO_DEPS=True
# Arrow's default allocator (mimalloc) keeps memory pyarrow has already freed; the system
# allocator gives it back. Local runs set this in pipeline/arrow_memory.py; workers started
# from this image get it here, before anything imports pyarrow.
ENV ARROW_DEFAULT_MEMORY_POOL=system

ENV FLEX_TEMPLATE_PYTHON_PY_FILE="${WORKDIR}/main.py"
ENV FLEX_TEMPLATE_PYTHON_SETUP_FILE="${WORKDIR}/setup.py"

# Workers run Beam's boot; the launcher is started by Dataflow through its own entrypoint.
ENTRYPOINT ["/opt/apache/beam/boot"]
