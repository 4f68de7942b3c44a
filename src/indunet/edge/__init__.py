"""Edge agent: read PLCs (OPC UA) and meters (Modbus TCP), buffer on disk, publish over MQTT."""
